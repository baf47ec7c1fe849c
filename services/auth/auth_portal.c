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
    "<title>xtask login</title><link rel=\"icon\" href=\"data:,\"><style>"
    "body{font-family:system-ui,sans-serif;background:#f4f5f7;display:flex;justify-content:center;padding-"
    "top:10vh}"
    "main{background:#fff;padding:2rem 2.5rem;border-radius:8px;box-shadow:0 2px 8px #0002;min-width:18rem}"
    "label{display:block;margin:.8rem 0 .2rem}input[type=text],input[type=password]{width:100%;padding:.4rem;"
    "box-sizing:border-box}button{margin-top:1rem;padding:.5rem "
    "1.2rem}.err{color:#b00020}.ok{color:#0a5c2a}.muted{color:#666}"
    "</style></head><body><main><h1>xtask</h1>\n";

/* One row per message code a form's redirect may carry (auth_server.c portal_redirect). The first
 * factor's failure stays generic: it never tells whether the name exists (a lock-out applies to
 * unknown names the same way). */
static const struct {
    const char *code;
    int error;
    const char *text;
} messages[] = {
    {"credentials", 1, "Incorrect username or password."},
    {"code", 1,
     "Wrong code. Enter the code your authenticator app shows now (if it keeps failing, check that the "
     "device's clock is right)."},
    {"used", 1, "That code was already used: each code works once. Wait for the next one, then enter it."},
    {"locked", 1, NULL}, /* with the time left: auth_portal_message */
    {"busy", 1, "Too many sign-ins in progress, retry in a moment."},
    {"signin", 1, "Your session has ended: sign in again."},
    {"sent", 0, "A one-time code was sent to you: enter it below."},
    {"otc", 1, "That one-time code is not right."},
    {"otc-expired", 1, "That one-time code has expired or was tried too often: send a new one."},
    {"notify-failed", 1, "The code could not be sent (the notifier failed): ask an administrator."},
    {"enrolled", 0, "Your authenticator app is set up: use its codes from now on."},
    {"elevation", 1, "Confirm it is you first: send a one-time code."},
    {"need-2fa", 1, "You have an authenticator already: sign in with its code before you replace it."},
};

int auth_portal_message(const char *code, int64_t left_ms, char *out, size_t outlen)
{
    size_t i;
    if (!code || outlen == 0) return -1;
    for (i = 0; i < sizeof(messages) / sizeof(messages[0]); i++) {
        if (strcmp(messages[i].code, code) != 0) continue;
        if (messages[i].text) {
            snprintf(out, outlen, "%s", messages[i].text);
        } else if (left_ms <= 0) {
            snprintf(out, outlen,
                     "The lock-out after too many failed attempts has ended: you can try again.");
        } else {
            long long s = (long long)((left_ms + 999) / 1000);
            if (s >= 120)
                snprintf(out, outlen, "Too many failed attempts: locked out. Try again in %lld min %lld s.",
                         s / 60, s % 60);
            else
                snprintf(out, outlen, "Too many failed attempts: locked out. Try again in %lld s.", s);
        }
        return messages[i].error;
    }
    return -1;
}

static void put_signout(sbuf *b)
{
    puts_(b,
          "<form method=\"post\" action=\"/api/logout\"><button type=\"submit\">Sign out</button></form>\n");
}

char *auth_portal_render(const auth_portal_page *pg, size_t *len)
{
    sbuf b = {0};
    const char *rd = pg->rd ? pg->rd : "";
    puts_(&b, head);
    if (pg->error && *pg->error) {
        puts_(&b, "<p class=\"err\" id=\"error\" role=\"alert\">");
        put_esc(&b, pg->error);
        puts_(&b, "</p>\n");
    }
    if (pg->notice && *pg->notice) {
        puts_(&b, "<p class=\"ok\" id=\"notice\" role=\"status\">");
        put_esc(&b, pg->notice);
        puts_(&b, "</p>\n");
    }
    switch (pg->view) {
    case AUTH_PORTAL_LOGIN:
        /* a failed sign-in comes back with the name it tried: kept, and the password field focused */
        puts_(&b, "<form method=\"post\" action=\"/api/firstfactor\">\n"
                  "<label for=\"username\">Username</label>"
                  "<input type=\"text\" id=\"username\" name=\"username\" autocomplete=\"username\" "
                  "required");
        if (pg->user && *pg->user) {
            puts_(&b, " value=\"");
            put_esc(&b, pg->user);
            puts_(&b, "\">\n");
        } else {
            puts_(&b, " autofocus>\n");
        }
        puts_(&b,
              "<label for=\"password\">Password</label>"
              "<input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" "
              "required");
        puts_(&b, pg->user && *pg->user ? " autofocus>\n" : ">\n");
        puts_(&b, "<label><input type=\"checkbox\" name=\"keepMeLoggedIn\" value=\"true\"> Remember me"
                  "</label>\n<input type=\"hidden\" name=\"rd\" value=\"");
        put_esc(&b, rd);
        puts_(&b, "\">\n<button type=\"submit\">Sign in</button>\n</form>\n");
        break;
    case AUTH_PORTAL_TOTP:
        puts_(&b, "<p>Signed in as <b id=\"user\">");
        put_esc(&b, pg->user);
        puts_(&b,
              "</b>. Enter the code from your authenticator app.</p>\n"
              "<form method=\"post\" action=\"/api/secondfactor/totp\">\n"
              "<label for=\"token\">One-time code</label>"
              "<input type=\"text\" id=\"token\" name=\"token\" inputmode=\"numeric\" pattern=\"[0-9]{6,8}\" "
              "autocomplete=\"one-time-code\" required autofocus>\n<input type=\"hidden\" name=\"rd\" "
              "value=\"");
        put_esc(&b, rd);
        puts_(&b, "\">\n<button type=\"submit\">Verify</button>\n</form>\n");
        if (pg->can_enrol)
            puts_(&b, "<p><a id=\"enrol\" href=\"/enrol\">Set up an authenticator app</a></p>\n");
        put_signout(&b);
        break;
    case AUTH_PORTAL_ENROL:
        puts_(&b, "<h2>Set up an authenticator app</h2>\n<p>Signed in as <b id=\"user\">");
        put_esc(&b, pg->user);
        puts_(&b, "</b>.</p>\n");
        if (pg->enrol_stage == AUTH_ENROL_ELEVATED) {
            puts_(&b, "<p>Scan this QR code with your authenticator app, then enter the code it shows. "
                      "Your current authenticator (if any) keeps working until this one is verified.</p>\n");
            if (pg->qr_svg) puts_(&b, pg->qr_svg);
            puts_(&b, "\n<p class=\"muted\">Or type the secret: <code id=\"secret\">");
            put_esc(&b, pg->secret);
            puts_(&b,
                  "</code></p>\n<form method=\"post\" action=\"/api/secondfactor/totp/register\">\n"
                  "<label for=\"token\">Code from the new authenticator</label><input type=\"text\" "
                  "id=\"token\" name=\"token\" inputmode=\"numeric\" pattern=\"[0-9]{6,8}\" "
                  "autocomplete=\"one-time-code\" required autofocus>\n<button type=\"submit\">Verify and "
                  "save</button>\n</form>\n");
        } else if (pg->enrol_stage == AUTH_ENROL_CODE_SENT) {
            puts_(
                &b,
                "<form method=\"post\" action=\"/api/user/session/elevation\">\n"
                "<label for=\"otc\">One-time code (from the message sent to you)</label><input type=\"text\" "
                "id=\"otc\" name=\"otc\" autocomplete=\"off\" required autofocus>\n<button "
                "type=\"submit\">Confirm</button>\n</form>\n<form method=\"post\" "
                "action=\"/api/user/session/elevation\"><button type=\"submit\" id=\"send\">Send another "
                "code</button></form>\n");
        } else if (pg->enrol_stage == AUTH_ENROL_NONE) {
            puts_(&b, "<p>First confirm it is you: a one-time code is sent to you through the notifier.</p>\n"
                      "<form method=\"post\" action=\"/api/user/session/elevation\"><button type=\"submit\" "
                      "id=\"send\">Send a code</button></form>\n");
        }
        puts_(&b, "<p><a href=\"/\">Back</a></p>\n");
        put_signout(&b);
        break;
    case AUTH_PORTAL_DONE:
        puts_(&b, "<p>Signed in as <b id=\"user\">");
        put_esc(&b, pg->user);
        puts_(&b, "</b>.</p>\n");
        if (*rd) {
            puts_(&b, "<p><a href=\"");
            put_esc(&b, rd);
            puts_(&b, "\">Continue</a></p>\n");
        }
        if (pg->can_enrol)
            puts_(&b, "<p><a id=\"enrol\" href=\"/enrol\">Set up a new authenticator app</a></p>\n");
        put_signout(&b);
        break;
    }
    puts_(&b, "</main></body></html>\n");
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}
