/* Training data for dit train / validate: Fashion-MNIST's IDX files (from
 * Debian's dataset-fashion-mnist) and image folders (one sub-folder per
 * class), as (N, C, S, S) floats in [-1, 1] with int labels. */
#ifndef DIT_DATA_H
#define DIT_DATA_H

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "dit.h"

typedef struct dataset {
    int n, channels, size; /* n images of channels x size x size */
    float *images;         /* (n, C, S, S) */
    int32_t *labels;       /* (n) */
    int num_classes;
    char **class_names; /* (num_classes + 1) NULL-terminated */
} dataset;

/* IDX pair (images idx3, labels idx1), gzip or plain; 28x28 images are
 * padded with the background to `size` (>= 28). */
bool dataset_load_idx(const char *images_path, const char *labels_path, int size, dataset *out,
                      GError **err);
/* "fashion-mnist" or "fashion-mnist-test": the Debian package's files */
bool dataset_load_named(const char *name, int size, dataset *out, GError **err);
/* DIR/<class>/<image>.png, classes in sorted order; resized (centre crop) to size */
bool dataset_load_folder(const char *dir, int size, int channels, dataset *out, GError **err);
/* DIR with a CSV of "file,label" lines (paths relative to DIR; a header
 * line without a PNG path is skipped); classes are the sorted labels */
bool dataset_load_csv(const char *dir, const char *csv, int size, int channels, dataset *out,
                      GError **err);
/* Replaces images by their VAE latents (mean x scaling factor), encoding
 * once: DIR/<name>-<size>.safetensors is reused when it matches. */
bool dataset_encode_cached(dit_ctx *ctx, const char *vae_path, const char *dir, const char *name,
                           dataset *d, GError **err);
void dataset_clear(dataset *d);
/* For each of ns samples (ns, C, S, S): the index of its nearest image in
 * train (pixel L2) and the RMS distance per pixel to it */
void dataset_nearest(const dataset *train, const float *samples, int ns, int *idx, double *dist);
/* The same over the first k values of every image (with one channel, the
 * top k / S rows) */
void dataset_nearest_prefix(const dataset *train, const float *samples, int ns, int k, int *idx,
                            double *dist);

#endif
