/*
 * auth_portal: the login portal, plain HTML forms that work without JavaScript. The forms post
 * application/x-www-form-urlencoded to the same API a script would call with JSON.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

typedef struct {
    char *p;
    size_t len, cap;
    int failed;
} sbuf;

static void put(sbuf *b, const char *s, size_t n)
{
    if (b->failed) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->cap ? b->cap : 4096);
        char *np;
        while (cap < b->len + n + 1)
            cap *= 2;
        np = realloc(b->p, cap);
        if (!np) {
            b->failed = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void puts_(sbuf *b, const char *s)
{
    put(b, s, strlen(s));
}

static void put_esc(sbuf *b, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<':
            puts_(b, "&lt;");
            break;
        case '>':
            puts_(b, "&gt;");
            break;
        case '&':
            puts_(b, "&amp;");
            break;
        case '"':
            puts_(b, "&quot;");
            break;
        case '\'':
            puts_(b, "&#39;");
            break;
        default:
            put(b, s, 1);
        }
    }
}

static const char head[] =
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
    "<title>xtask login</title><style>"
    "body{font-family:system-ui,sans-serif;background:#f4f5f7;display:flex;justify-content:center;padding-"
    "top:10vh}"
    "main{background:#fff;padding:2rem 2.5rem;border-radius:8px;box-shadow:0 2px 8px #0002;min-width:18rem}"
    "label{display:block;margin:.8rem 0 .2rem}input[type=text],input[type=password]{width:100%;padding:.4rem;"
    "box-sizing:border-box}button{margin-top:1rem;padding:.5rem 1.2rem}.err{color:#b00020}.muted{color:#666}"
    "</style></head><body><main><h1>xtask</h1>\n";

char *auth_portal_render(auth_portal_view view, const char *user, const char *rd, const char *message,
                         size_t *len)
{
    sbuf b = {0};
    puts_(&b, head);
    if (message && *message) {
        puts_(&b, "<p class=\"err\" role=\"alert\">");
        put_esc(&b, message);
        puts_(&b, "</p>\n");
    }
    switch (view) {
    case AUTH_PORTAL_LOGIN:
        puts_(&b,
              "<form method=\"post\" action=\"/api/firstfactor\">\n"
              "<label for=\"username\">Username</label>"
              "<input type=\"text\" id=\"username\" name=\"username\" autocomplete=\"username\" required "
              "autofocus>\n"
              "<label for=\"password\">Password</label>"
              "<input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" "
              "required>\n<label><input type=\"checkbox\" name=\"keepMeLoggedIn\" value=\"true\"> Remember me"
              "</label>\n<input type=\"hidden\" name=\"rd\" value=\"");
        put_esc(&b, rd);
        puts_(&b, "\">\n<button type=\"submit\">Sign in</button>\n</form>\n");
        break;
    case AUTH_PORTAL_TOTP:
        puts_(&b, "<p>Signed in as <b>");
        put_esc(&b, user);
        puts_(&b,
              "</b>. Enter the code from your authenticator app.</p>\n"
              "<form method=\"post\" action=\"/api/secondfactor/totp\">\n"
              "<label for=\"token\">One-time code</label>"
              "<input type=\"text\" id=\"token\" name=\"token\" inputmode=\"numeric\" pattern=\"[0-9]{6,8}\" "
              "autocomplete=\"one-time-code\" required autofocus>\n<input type=\"hidden\" name=\"rd\" "
              "value=\"");
        put_esc(&b, rd);
        puts_(&b, "\">\n<button type=\"submit\">Verify</button>\n</form>\n");
        break;
    case AUTH_PORTAL_DONE:
        puts_(&b, "<p>Signed in as <b>");
        put_esc(&b, user);
        puts_(&b, "</b>.</p>\n");
        if (rd && *rd) {
            puts_(&b, "<p><a href=\"");
            put_esc(&b, rd);
            puts_(&b, "\">Continue</a></p>\n");
        }
        break;
    }
    if (view != AUTH_PORTAL_LOGIN)
        puts_(&b, "<form method=\"post\" action=\"/api/logout\"><button type=\"submit\">Sign "
                  "out</button></form>\n");
    puts_(&b, "</main></body></html>\n");
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}
