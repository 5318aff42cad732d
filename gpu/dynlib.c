/* Opening the CUDA libraries the backend loads on first use (cuBLAS, cuFFT, cuDNN).
 *
 * They are not linked: together they are over a gigabyte, and loading them at start-up cost every
 * fsvc process 0.7 s on a machine without a GPU. The dynamic loader's own search (LD_LIBRARY_PATH,
 * ld.so.cache) comes first; machines often have the toolkit in /usr/local/cuda without it being in
 * the cache, and Python installs ship the same libraries as pip "nvidia-*" wheels, so those folders
 * are tried next. FSVC_CUDA_LIBRARY_PATH (colon-separated folders) is searched before them. */
#include <dlfcn.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_internal.h"

static void *open_in(const char *dir, const char *soname) {
  char path[1024];
  if (snprintf(path, sizeof path, "%s/%s", dir, soname) >= (int)sizeof path) return NULL;
  return dlopen(path, RTLD_NOW | RTLD_LOCAL);
}

static void *open_in_list(const char *list, const char *soname) {
  if (!list || !*list) return NULL;
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", list);
  for (char *save = NULL, *dir = strtok_r(buf, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
    void *lib = open_in(dir, soname);
    if (lib) return lib;
  }
  return NULL;
}

static void *open_by_glob(const char *pattern, const char *soname) {
  glob_t g;
  void *lib = NULL;
  if (glob(pattern, GLOB_NOSORT, NULL, &g) != 0) return NULL;
  for (size_t i = 0; i < g.gl_pathc && !lib; i++) lib = open_in(g.gl_pathv[i], soname);
  globfree(&g);
  return lib;
}

void *fsvc_gpu_dlopen(const char *const *sonames, char *err, size_t err_size) {
  static const char *const pip_dirs[] = {
      "/opt/*/.venv/lib/python3*/site-packages/nvidia/*/lib",
      "/usr/local/lib/python3*/dist-packages/nvidia/*/lib",
      "/usr/local/lib/python3*/site-packages/nvidia/*/lib",
      "/usr/lib/python3/dist-packages/nvidia/*/lib",
      NULL};
  const char *first_error = NULL;
  char first[512] = "";
  for (int i = 0; sonames[i]; i++) {
    void *lib = dlopen(sonames[i], RTLD_NOW | RTLD_LOCAL);
    if (lib) return lib;
    if (!first_error) {
      first_error = dlerror();
      snprintf(first, sizeof first, "%s", first_error ? first_error : sonames[i]);
    }
  }
  const char *cuda_home = getenv("CUDA_HOME");
  char home_lib[1024] = "";
  if (cuda_home && *cuda_home) snprintf(home_lib, sizeof home_lib, "%s/lib64", cuda_home);
  for (int i = 0; sonames[i]; i++) {
    void *lib = open_in_list(getenv("FSVC_CUDA_LIBRARY_PATH"), sonames[i]);
    if (!lib && home_lib[0]) lib = open_in(home_lib, sonames[i]);
    if (!lib) lib = open_in("/usr/local/cuda/lib64", sonames[i]);
    for (int j = 0; !lib && pip_dirs[j]; j++) lib = open_by_glob(pip_dirs[j], sonames[i]);
    if (lib) return lib;
  }
  snprintf(err, err_size, "%s (also looked in $FSVC_CUDA_LIBRARY_PATH, $CUDA_HOME/lib64, /usr/local/cuda/lib64 "
           "and pip's nvidia-* folders)", first);
  return NULL;
}
