/* Host resources of the simulated host: storage classes, networks (virtual
 * switch + VLAN) and golden images, from an Aether-V hostresources.json or the
 * built-in sample of contract §6. */
#include "simhost.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The sample hostresources.json of Aether-V, plus the golden images that its
 * hosts keep under a DiskImages folder. */
static const char SAMPLE[] =
    "{\"version\":1,\"schema_name\":\"hostresources\","
    "\"storage_classes\":["
    "{\"name\":\"fast-ssd\",\"path\":\"C:\\\\ClusterStorage\\\\Volume1\\\\Storage\"},"
    "{\"name\":\"bulk-storage\",\"path\":\"C:\\\\ClusterStorage\\\\Volume2\\\\Storage\"}],"
    "\"networks\":["
    "{\"name\":\"Production\",\"model\":\"vlan\",\"configuration\":{\"virtual_switch\":\"External-Switch\",\"vlan_id\":100}},"
    "{\"name\":\"Development\",\"model\":\"vlan\",\"configuration\":{\"virtual_switch\":\"External-Switch\",\"vlan_id\":200}},"
    "{\"name\":\"Management\",\"model\":\"vlan\",\"configuration\":{\"virtual_switch\":\"External-Switch\",\"vlan_id\":10}}],"
    "\"virtual_machines_path\":\"C:\\\\ClusterStorage\\\\Volume1\\\\VirtualMachines\","
    "\"disk_images_path\":\"C:\\\\ClusterStorage\\\\Volume1\\\\DiskImages\","
    "\"golden_images\":["
    "{\"name\":\"Windows Server 2022\",\"os_family\":\"windows\"},"
    "{\"name\":\"Windows Server 2019\",\"os_family\":\"windows\"},"
    "{\"name\":\"Ubuntu 22.04\",\"os_family\":\"linux\"},"
    "{\"name\":\"Rocky Linux 9\",\"os_family\":\"linux\"}]}";

static char *dup_or(const char *s, const char *fallback)
{
    const char *v = s ? s : fallback;
    return v ? strdup(v) : NULL;
}

static bool load_storage(SimResources *r, json_t *arr, char *err, size_t errlen)
{
    if (!arr) return true;
    if (!json_is_array(arr)) {
        snprintf(err, errlen, "storage_classes must be a list");
        return false;
    }
    r->storage = calloc(json_array_size(arr) + 1, sizeof *r->storage);
    size_t i;
    json_t *sc;
    json_array_foreach(arr, i, sc)
    {
        const char *name = json_string_value(json_object_get(sc, "name"));
        const char *path = json_string_value(json_object_get(sc, "path"));
        if (!name || !path) {
            snprintf(err, errlen, "storage_classes[%zu] needs a name and a path", i);
            return false;
        }
        r->storage[r->n_storage].name = strdup(name);
        r->storage[r->n_storage].path = strdup(path);
        r->n_storage++;
    }
    return true;
}

static bool load_networks(SimResources *r, json_t *arr, char *err, size_t errlen)
{
    if (!arr) return true;
    if (!json_is_array(arr)) {
        snprintf(err, errlen, "networks must be a list");
        return false;
    }
    r->networks = calloc(json_array_size(arr) + 1, sizeof *r->networks);
    size_t i;
    json_t *nw;
    json_array_foreach(arr, i, nw)
    {
        const char *name = json_string_value(json_object_get(nw, "name"));
        json_t *conf = json_object_get(nw, "configuration");
        const char *sw = json_string_value(json_object_get(conf, "virtual_switch"));
        if (!name || !sw) {
            snprintf(err, errlen, "networks[%zu] needs a name and configuration.virtual_switch", i);
            return false;
        }
        SimNetwork *n = &r->networks[r->n_networks++];
        n->name = strdup(name);
        n->model = dup_or(json_string_value(json_object_get(nw, "model")), "vlan");
        n->virtual_switch = strdup(sw);
        json_t *vlan = json_object_get(conf, "vlan_id");
        if (json_is_integer(vlan)) {
            n->has_vlan = true;
            n->vlan_id = json_integer_value(vlan);
            if (n->vlan_id < 1 || n->vlan_id > 4094) {
                snprintf(err, errlen, "networks[%zu].configuration.vlan_id must be 1-4094", i);
                return false;
            }
        }
    }
    return true;
}

static bool load_images(SimResources *r, json_t *arr, char *err, size_t errlen)
{
    if (!json_is_array(arr)) {
        snprintf(err, errlen, "golden_images must be a list");
        return false;
    }
    r->images = calloc(json_array_size(arr) + 1, sizeof *r->images);
    size_t i;
    json_t *im;
    json_array_foreach(arr, i, im)
    {
        const char *name = json_is_string(im) ? json_string_value(im) : json_string_value(json_object_get(im, "name"));
        if (!name || !*name) {
            snprintf(err, errlen, "golden_images[%zu] needs a name", i);
            return false;
        }
        r->images[r->n_images].name = strdup(name);
        r->images[r->n_images].os_family = dup_or(json_string_value(json_object_get(im, "os_family")), NULL);
        r->n_images++;
    }
    return true;
}

static bool load_root(SimResources *r, json_t *root, char *err, size_t errlen)
{
    if (!json_is_object(root)) {
        snprintf(err, errlen, "host configuration is not a JSON object");
        return false;
    }
    if (!load_storage(r, json_object_get(root, "storage_classes"), err, errlen)) return false;
    if (!load_networks(r, json_object_get(root, "networks"), err, errlen)) return false;
    r->vm_path = dup_or(json_string_value(json_object_get(root, "virtual_machines_path")), NULL);
    r->images_path =
        dup_or(json_string_value(json_object_get(root, "disk_images_path")), "C:\\ClusterStorage\\Volume1\\DiskImages");
    json_t *images = json_object_get(root, "golden_images");
    if (images) return load_images(r, images, err, errlen);
    /* A real hostresources.json has no image list (the images are files): use
     * the sample's, and show them in the document as host.resources would
     * (hvdeploy's shim lists DiskImages\*.vhdx). */
    json_t *sample = json_loads(SAMPLE, 0, NULL);
    bool ok = load_images(r, json_object_get(sample, "golden_images"), err, errlen);
    json_object_set(root, "golden_images", json_object_get(sample, "golden_images"));
    json_decref(sample);
    return ok;
}

bool sim_resources_load(SimResources *r, const char *file, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    json_error_t je;
    json_t *root = file ? json_load_file(file, 0, &je) : json_loads(SAMPLE, 0, &je);
    if (!root) {
        snprintf(err, errlen, "Failed to read host configuration %s: %s (line %d)", file ? file : "(built-in)", je.text,
                 je.line);
        return false;
    }
    bool ok = load_root(r, root, err, errlen);
    r->document = root;
    if (!ok) sim_resources_free(r);
    return ok;
}

void sim_resources_free(SimResources *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->n_storage; i++) {
        free(r->storage[i].name);
        free(r->storage[i].path);
    }
    for (size_t i = 0; i < r->n_networks; i++) {
        free(r->networks[i].name);
        free(r->networks[i].model);
        free(r->networks[i].virtual_switch);
    }
    for (size_t i = 0; i < r->n_images; i++) {
        free(r->images[i].name);
        free(r->images[i].os_family);
    }
    free(r->storage);
    free(r->networks);
    free(r->images);
    free(r->vm_path);
    free(r->images_path);
    json_decref(r->document);
    memset(r, 0, sizeof *r);
}

/* PowerShell's -eq compares strings case-insensitively, and so does the agent. */
const SimStorageClass *sim_storage_find(const SimResources *r, const char *name)
{
    for (size_t i = 0; i < r->n_storage; i++)
        if (sim_strieq(r->storage[i].name, name)) return &r->storage[i];
    return NULL;
}

const SimNetwork *sim_network_find(const SimResources *r, const char *name)
{
    for (size_t i = 0; i < r->n_networks; i++)
        if (sim_strieq(r->networks[i].name, name)) return &r->networks[i];
    return NULL;
}

const SimImage *sim_image_find(const SimResources *r, const char *name)
{
    for (size_t i = 0; i < r->n_images; i++)
        if (sim_strieq(r->images[i].name, name)) return &r->images[i];
    return NULL;
}
