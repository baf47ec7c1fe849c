/* Redirect targets (`rd`, `authelia_url`, default_redirection_url): auth_rd_safe(), as verify_parse
 * reads it from the query with xt_query_get(). Differential: whatever auth_rd_safe() accepts,
 * libcurl's URL parser must read as https (or http when allowed) to a host under the domain with
 * no user info (an open redirect otherwise). */
#include <curl/curl.h>
#include <strings.h>

#include "auth.h"
#include "fuzz.h"
#include "xt_path.h"

static void check_with_curl(const char *url, const char *domain, int allow_http)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *userinfo = NULL;
    if (u == NULL) abort();
    /* a URL curl cannot parse at all is one a browser may still read: only compare what it reads */
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK) {
        if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
            abort();
        if (!(strcasecmp(scheme, "https") == 0 || (allow_http && strcasecmp(scheme, "http") == 0))) abort();
        if (curl_url_get(u, CURLUPART_USER, &userinfo, 0) == CURLUE_OK) abort();
        char lc[AUTH_HOST_MAX];
        size_t hl = strlen(host);
        if (hl >= sizeof(lc)) abort();
        for (size_t i = 0; i <= hl; i++)
            lc[i] = (char)((host[i] >= 'A' && host[i] <= 'Z') ? host[i] + 32 : host[i]);
        if (!auth_host_under(lc, domain)) abort();
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(userinfo);
    curl_url_cleanup(u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fz_str(data, size);
    char val[AUTH_URL_MAX + 1];
    for (int allow_http = 0; allow_http < 2; allow_http++) {
        if (auth_rd_safe((const char *)data, size, "example.com", allow_http)) {
            if (memchr(data, 0, size) != NULL) abort();
            check_with_curl(s, "example.com", allow_http);
        }
    }
    /* ?rd=<encoded> as the front's forward_auth URL and the portal pass it */
    long n = xt_query_get(s, strlen(s), "rd", val, sizeof(val));
    if (n > 0 && auth_rd_safe(val, (size_t)n, "example.com", 0)) check_with_curl(val, "example.com", 0);
    free(s);
    return 0;
}
