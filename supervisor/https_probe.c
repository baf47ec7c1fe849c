/*
 * https_probe: `http: https://...` probes, run in a child process.
 *
 * The supervisor's own HTTP client (probe.c) speaks plain HTTP only: TLS inside the supervisor would
 * map OpenSSL's libssl and libcrypto (several MB of RSS, against a 1.5 MB budget) for one request per
 * interval. An https probe instead runs this program's hidden subcommand in a child, like an exec
 * probe (own process group, the service's user, SIGKILL at the probe's timeout):
 *
 *   xtask-supervisor __probe-https URL TIMEOUT_MS VERIFY     (VERIFY: 1 check the certificate, 0 not)
 *   xtask-supervisor __probe-https --available               (exit 0 if libcurl can be loaded)
 *
 * The child loads libcurl.so.4 with dlopen (the binary is static; the image has the same glibc), does
 * one GET without following redirects, and exits: 0 for a 2xx answer, 1 for another status,
 * 2 when it could not connect or the TLS handshake failed, 3 when libcurl is not there. probe.c turns
 * these into the probe's message.
 */
#include "sv.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    CURL *(*init)(void);
    CURLcode (*setopt)(CURL *, CURLoption, ...);
    CURLcode (*perform)(CURL *);
    CURLcode (*getinfo)(CURL *, CURLINFO, ...);
    void (*cleanup)(CURL *);
    const char *(*strerror)(CURLcode);
} curl_fns;

static int load_curl(curl_fns *f)
{
    void *h = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) return -1;
    *(void **)&f->init = dlsym(h, "curl_easy_init");
    *(void **)&f->setopt = dlsym(h, "curl_easy_setopt");
    *(void **)&f->perform = dlsym(h, "curl_easy_perform");
    *(void **)&f->getinfo = dlsym(h, "curl_easy_getinfo");
    *(void **)&f->cleanup = dlsym(h, "curl_easy_cleanup");
    *(void **)&f->strerror = dlsym(h, "curl_easy_strerror");
    return f->init && f->setopt && f->perform && f->getinfo && f->cleanup && f->strerror ? 0 : -1;
}

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

int sv_https_probe_main(int argc, char **argv)
{
    curl_fns f;
    if (load_curl(&f) < 0) {
        fprintf(stderr, "xtask-supervisor: https probe: libcurl.so.4 cannot be loaded: %s\n", dlerror());
        return SV_HTTPS_NO_CURL;
    }
    if (argc == 1 && strcmp(argv[0], "--available") == 0) return 0;
    if (argc != 3 || strncmp(argv[0], "https://", 8) != 0) {
        fprintf(stderr, "usage: xtask-supervisor __probe-https https://URL TIMEOUT_MS VERIFY\n");
        return SV_HTTPS_FAILED;
    }
    long timeout_ms = strtol(argv[1], NULL, 10), verify = strcmp(argv[2], "0") != 0, status = 0;
    CURL *c = f.init();
    if (c == NULL) return SV_HTTPS_FAILED;
    f.setopt(c, CURLOPT_URL, argv[0]);
    f.setopt(c, CURLOPT_PROTOCOLS_STR, "https");
    f.setopt(c, CURLOPT_NOSIGNAL, 1L);
    f.setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 1000L);
    f.setopt(c, CURLOPT_SSL_VERIFYPEER, verify);
    f.setopt(c, CURLOPT_SSL_VERIFYHOST, verify ? 2L : 0L);
    f.setopt(c, CURLOPT_USERAGENT, "xtask-supervisor/" SV_VERSION);
    f.setopt(c, CURLOPT_WRITEFUNCTION, discard);
    CURLcode rc = f.perform(c);
    if (rc == CURLE_OK) f.getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    f.cleanup(c);
    if (rc != CURLE_OK) {
        fprintf(stderr, "xtask-supervisor: https probe %s: %s\n", argv[0], f.strerror(rc));
        return SV_HTTPS_FAILED;
    }
    return status >= 200 && status < 300 ? 0 : SV_HTTPS_NOT_2XX;
}
