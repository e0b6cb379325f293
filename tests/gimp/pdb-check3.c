/* pdb-check3: a GIMP 3 test plug-in that looks procedures up in GIMP's PDB
 * and prints what GIMP registered, for test-gimp.py to compare with GIMP
 * 2.10 and with the documented arguments (Script-Fu 3 cannot see the PDB's
 * introspection procedures).
 *
 *   (plug-in-dit-test-pdb #:run-mode RUN-NONINTERACTIVE #:procedures "a,b")
 *
 * prints, for each procedure, on GIMP's stdout:
 *   DITPDB <proc> menu <path>             one line per menu path
 *   DITPDB <proc> label <menu label>
 *   DITPDB <proc> arg <i> <name> <kind> ...
 *       int <min> <max> <default> | double <min> <max> <default> |
 *       string "<default>" | choice <default> <nick,nick,...> | <type name>
 *   DITPDB <proc> return <i> <name> <type name>
 * then runs plug-in-dit-inpaint non-interactively on a new 2-layer image
 * without a selection, once with both layers and once with one, and prints
 *   DITPDB run drawables=<n> status=<GimpPDBStatusType nick> error=<message>
 */
#include <libgimp/gimp.h>

#include <stdio.h>
#include <string.h>

#define PROC "plug-in-dit-test-pdb"

#define DIT_TYPE_PDB_CHECK (dit_pdb_check_get_type())
G_DECLARE_FINAL_TYPE(DitPdbCheck, dit_pdb_check, DIT, PDB_CHECK, GimpPlugIn)

struct _DitPdbCheck {
    GimpPlugIn parent_instance;
};

G_DEFINE_TYPE(DitPdbCheck, dit_pdb_check, GIMP_TYPE_PLUG_IN)

static void print_arg(const gchar *proc, const gchar *what, gint i, GParamSpec *p)
{
    printf("DITPDB %s %s %d %s ", proc, what, i, g_param_spec_get_name(p));
    const GValue *def = g_param_spec_get_default_value(p);
    if (G_IS_PARAM_SPEC_INT(p)) {
        const GParamSpecInt *s = G_PARAM_SPEC_INT(p);
        printf("int %d %d %d\n", s->minimum, s->maximum, s->default_value);
    } else if (G_IS_PARAM_SPEC_DOUBLE(p)) {
        const GParamSpecDouble *s = G_PARAM_SPEC_DOUBLE(p);
        printf("double %g %g %g\n", s->minimum, s->maximum, s->default_value);
    } else if (GIMP_IS_PARAM_SPEC_CHOICE(p)) {
        GimpChoice *choice = gimp_param_spec_choice_get_choice(p);
        printf("choice %s ", g_value_get_string(def));
        for (GList *l = gimp_choice_list_nicks(choice); l; l = l->next)
            printf("%s%s", (const gchar *)l->data, l->next ? "," : "\n");
    } else if (G_IS_PARAM_SPEC_STRING(p)) {
        const gchar *s = g_value_get_string(def);
        printf("string \"%s\"\n", s ? s : "");
    } else {
        printf("%s\n", G_PARAM_SPEC_TYPE_NAME(p));
    }
}

static void describe(GimpPDB *pdb, const gchar *name)
{
    GimpProcedure *proc = gimp_pdb_lookup_procedure(pdb, name);
    if (!proc) {
        printf("DITPDB %s missing\n", name);
        return;
    }
    for (GList *l = gimp_procedure_get_menu_paths(proc); l; l = l->next)
        printf("DITPDB %s menu %s\n", name, (const gchar *)l->data);
    printf("DITPDB %s label %s\n", name, gimp_procedure_get_menu_label(proc));
    gint n;
    GParamSpec **args = gimp_procedure_get_arguments(proc, &n);
    for (gint i = 0; i < n; i++) /* the arrays belong to the procedure */
        print_arg(name, "arg", i, args[i]);
    GParamSpec **rets = gimp_procedure_get_return_values(proc, &n);
    for (gint i = 0; i < n; i++)
        print_arg(name, "return", i, rets[i]);
}

/* plug-in-dit-inpaint on n of the two layers of a new image */
static void run_inpaint(GimpPDB *pdb, gint n)
{
    GimpImage *image = gimp_image_new(64, 64, GIMP_RGB);
    GimpDrawable *drawables[3] = {NULL, NULL, NULL};
    for (gint i = 0; i < 2; i++) {
        GimpLayer *layer =
            gimp_layer_new(image, "layer", 64, 64, GIMP_RGB_IMAGE, 100.0, GIMP_LAYER_MODE_NORMAL);
        gimp_image_insert_layer(image, layer, NULL, 0);
        if (i < n)
            drawables[i] = GIMP_DRAWABLE(layer);
    }
    GimpProcedure *proc = gimp_pdb_lookup_procedure(pdb, "plug-in-dit-inpaint");
    GimpValueArray *ret = gimp_procedure_run(proc, "run-mode", GIMP_RUN_NONINTERACTIVE, "image",
                                             image, "drawables", drawables, NULL);
    const GimpPDBStatusType status = GIMP_VALUES_GET_ENUM(ret, 0);
    GEnumClass *klass = g_type_class_ref(GIMP_TYPE_PDB_STATUS_TYPE);
    GEnumValue *ev = g_enum_get_value(klass, status);
    printf("DITPDB run drawables=%d status=%s error=%s\n", n, ev ? ev->value_nick : "?",
           status == GIMP_PDB_SUCCESS ? "" : gimp_pdb_get_last_error(pdb));
    g_type_class_unref(klass);
    gimp_value_array_unref(ret);
    gimp_image_delete(image);
}

static GimpValueArray *run(GimpProcedure *procedure, GimpProcedureConfig *config, gpointer run_data)
{
    GimpPDB *pdb = gimp_get_pdb();
    gchar *list = NULL;
    g_object_get(config, "procedures", &list, NULL);
    gchar **names = g_strsplit(list ? list : "", ",", -1);
    for (gint i = 0; names[i]; i++)
        if (*names[i])
            describe(pdb, names[i]);
    g_strfreev(names);
    g_free(list);
    run_inpaint(pdb, 2);
    run_inpaint(pdb, 1);
    fflush(stdout);
    return gimp_procedure_new_return_values(procedure, GIMP_PDB_SUCCESS, NULL);
}

static GList *query_procedures(GimpPlugIn *plug_in) { return g_list_append(NULL, g_strdup(PROC)); }

static GimpProcedure *create_procedure(GimpPlugIn *plug_in, const gchar *name)
{
    GimpProcedure *procedure =
        gimp_procedure_new(plug_in, name, GIMP_PDB_PROC_TYPE_PLUGIN, run, NULL, NULL);
    gimp_procedure_set_documentation(procedure, "Test: print PDB registrations", NULL, name);
    gimp_procedure_set_attribution(procedure, "gimp-dit tests", "gimp-dit tests", "2025");
    gimp_procedure_add_enum_argument(procedure, "run-mode", "Run mode", "The run mode",
                                     GIMP_TYPE_RUN_MODE, GIMP_RUN_NONINTERACTIVE,
                                     G_PARAM_READWRITE);
    gimp_procedure_add_string_argument(procedure, "procedures", "Procedures",
                                       "Comma-separated procedure names", "", G_PARAM_READWRITE);
    return procedure;
}

static void dit_pdb_check_class_init(DitPdbCheckClass *klass)
{
    GimpPlugInClass *plug_in_class = GIMP_PLUG_IN_CLASS(klass);
    plug_in_class->query_procedures = query_procedures;
    plug_in_class->create_procedure = create_procedure;
    plug_in_class->set_i18n = NULL;
}

static void dit_pdb_check_init(DitPdbCheck *self) {}

GIMP_MAIN(DIT_TYPE_PDB_CHECK)
