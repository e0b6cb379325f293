// The C face of libsentencepiece (internal/spm.h): the one C++ file of
// libdit, kept to what the tokenizer needs.
#include <sentencepiece_processor.h>

#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

extern "C" {
#include "internal/spm.h"
}

struct dit_spm {
    sentencepiece::SentencePieceProcessor sp;
};

extern "C" dit_spm *dit_spm_load(const char *path, char *err, size_t err_len)
{
    dit_spm *s = new (std::nothrow) dit_spm;
    if (!s) {
        snprintf(err, err_len, "out of memory");
        return nullptr;
    }
    const auto st = s->sp.Load(path);
    if (!st.ok()) {
        snprintf(err, err_len, "%s", st.ToString().c_str());
        delete s;
        return nullptr;
    }
    return s;
}

extern "C" void dit_spm_free(dit_spm *spm) { delete spm; }

extern "C" int dit_spm_size(const dit_spm *spm) { return spm->sp.GetPieceSize(); }
extern "C" int dit_spm_eos(const dit_spm *spm) { return spm->sp.eos_id(); }
extern "C" int dit_spm_pad(const dit_spm *spm) { return spm->sp.pad_id(); }
extern "C" int dit_spm_unk(const dit_spm *spm) { return spm->sp.unk_id(); }

extern "C" bool dit_spm_encode(const dit_spm *spm, const char *text, size_t len, int32_t **ids,
                               int *n, char *err, size_t err_len)
{
    *ids = nullptr, *n = 0;
    std::vector<int> out;
    try {
        const auto st = spm->sp.Encode(std::string(text, len), &out);
        if (!st.ok()) {
            snprintf(err, err_len, "%s", st.ToString().c_str());
            return false;
        }
    } catch (const std::bad_alloc &) {
        snprintf(err, err_len, "out of memory");
        return false;
    }
    *ids = static_cast<int32_t *>(malloc((out.size() ? out.size() : 1) * sizeof(int32_t)));
    if (!*ids) {
        snprintf(err, err_len, "out of memory");
        return false;
    }
    for (size_t i = 0; i < out.size(); i++)
        (*ids)[i] = out[i];
    *n = static_cast<int>(out.size());
    return true;
}
