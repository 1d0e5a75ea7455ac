/* fetch_url.c — the pure half of fetch: which URLs are accepted (http and https only,
 * refused before any I/O), hf:// parsing and resolution against the hub's `resolve` layout,
 * file names and sibling URLs for external data, and where the cache lives. Reads the
 * environment ($ONNXTUNE_CACHE, $ONNXTUNE_HUB_URL, $HOME) and nothing else: no files, no
 * network. See fetch_internal.h. */
#include "importer/fetch_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void ot_fetch_target_free(ot_fetch_target *t) {
    free(t->url);
    memset(t, 0, sizeof *t);
}

void ot_hf_ref_free(ot_hf_ref *r) {
    free(r->org);
    free(r->name);
    free(r->rev);
    free(r->file);
    memset(r, 0, sizeof *r);
}

static int has_prefix_ci(const char *s, const char *p) { return strncasecmp(s, p, strlen(p)) == 0; }

int ot_fetch_is_hf(const char *s) { return s && has_prefix_ci(s, "hf://"); }

int ot_is_url(const char *s) {
    return s && (has_prefix_ci(s, "http://") || has_prefix_ci(s, "https://") || ot_fetch_is_hf(s));
}

/* Length of the scheme before "://", or 0 when `url` does not start with one. */
static size_t scheme_len(const char *url) {
    size_t n = 0;
    if (!isalpha((unsigned char)url[0])) return 0;
    while (isalnum((unsigned char)url[n]) || url[n] == '+' || url[n] == '-' || url[n] == '.') n++;
    return strncmp(url + n, "://", 3) == 0 ? n : 0;
}

ot_status ot_fetch_check_scheme(const char *url) {
    if (!url || !url[0]) return ot_errorf(OT_E_INVALID, "empty URL");
    size_t n = scheme_len(url);
    if (!n) return ot_errorf(OT_E_INVALID, "'%s' is not a URL (expected http://, https:// or hf://)", url);
    int web = (n == 4 && strncasecmp(url, "http", 4) == 0) || (n == 5 && strncasecmp(url, "https", 5) == 0);
    if (!web)
        return ot_errorf(OT_E_UNSUPPORTED, "URL '%s': scheme '%.*s' is not supported (only http and https)", url, (int)n,
                         url);
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return ot_errorf(OT_E_INVALID, "URL '%s' contains whitespace or control characters", url);
    const char *host = url + n + 3;
    if (!host[0] || host[0] == '/' || host[0] == '?' || host[0] == '#')
        return ot_errorf(OT_E_INVALID, "URL '%s' has no host", url);
    return OT_OK;
}

ot_status ot_fetch_check_relpath(const char *rel, const char *what) {
    if (!rel || !rel[0]) return ot_errorf(OT_E_INVALID, "%s: empty file location", what);
    if (rel[0] == '/') return ot_errorf(OT_E_INVALID, "%s: location '%s' must be relative", what, rel);
    for (const char *p = rel; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '\\')
            return ot_errorf(OT_E_INVALID, "%s: location '%s' contains a backslash or control character", what, rel);
    for (const char *c = rel; *c;) {
        const char *e = strchr(c, '/');
        size_t len = e ? (size_t)(e - c) : strlen(c);
        if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
            return ot_errorf(OT_E_INVALID, "%s: location '%s' has an empty, '.' or '..' component", what, rel);
        c += len;
        if (*c == '/') {
            c++;
            if (!*c) return ot_errorf(OT_E_INVALID, "%s: location '%s' ends with '/'", what, rel);
        }
    }
    return OT_OK;
}

/* Appends `s` to buf (capacity checked by the caller: 3 bytes per input byte), %-encoding
 * everything outside RFC 3986's unreserved set except '/'. Returns the new length. */
static size_t encode_path(char *buf, size_t len, const char *s) {
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~' || *p == '/') {
            buf[len++] = (char)*p;
        } else {
            buf[len++] = '%';
            buf[len++] = hex[*p >> 4];
            buf[len++] = hex[*p & 15];
        }
    }
    buf[len] = '\0';
    return len;
}

/* A name part of an hf:// URL: letters, digits, '.', '_', '-'; not "." or "..". */
static int hf_part_ok(const char *s) {
    if (!s[0] || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) return 0;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-') return 0;
    return 1;
}

ot_status ot_hf_parse(const char *url, ot_hf_ref *out) {
    memset(out, 0, sizeof *out);
    if (!ot_fetch_is_hf(url)) return ot_errorf(OT_E_INVALID, "'%s' is not an hf:// URL", url ? url : "");
    const char *s = url + 5;
    size_t end = strcspn(s, "#");
    char *body = strndup(s, end);
    if (!body) return ot_errorf(OT_E_NOMEM, "out of memory");
    ot_status st = OT_OK;
    char *slash1 = strchr(body, '/');
    if (!slash1) {
        st = ot_errorf(OT_E_INVALID, "hf URL '%s': expected hf://ORG/NAME[@REV][/FILE]", url);
        goto done;
    }
    *slash1 = '\0';
    char *name = slash1 + 1, *file = NULL;
    char *slash2 = strchr(name, '/');
    if (slash2) {
        *slash2 = '\0';
        file = slash2 + 1;
    }
    char *at = strchr(name, '@');
    const char *rev = "main";
    if (at) {
        *at = '\0';
        rev = at + 1;
    }
    if (!hf_part_ok(body) || !hf_part_ok(name) || !hf_part_ok(rev)) {
        st = ot_errorf(OT_E_INVALID,
                       "hf URL '%s': ORG, NAME and REV must be non-empty and made of letters, digits, '.', '_', '-' "
                       "(got org '%s', name '%s', rev '%s')",
                       url, body, name, rev);
        goto done;
    }
    if (file && file[0]) {
        if ((st = ot_fetch_check_relpath(file, "hf URL FILE")) != OT_OK) {
            st = ot_error_wrap(st, "'%s': ", url);
            goto done;
        }
    }
    out->org = strdup(body);
    out->name = strdup(name);
    out->rev = strdup(rev);
    out->file = file && file[0] ? strdup(file) : NULL;
    if (!out->org || !out->name || !out->rev || (file && file[0] && !out->file)) {
        ot_hf_ref_free(out);
        st = ot_errorf(OT_E_NOMEM, "out of memory");
    }
done:
    free(body);
    return st;
}

const char *ot_fetch_hub(const ot_fetch_opts *opts) {
    if (opts && opts->hub_url && opts->hub_url[0]) return opts->hub_url;
    const char *env = getenv("ONNXTUNE_HUB_URL");
    return env && env[0] ? env : OT_FETCH_DEFAULT_HUB;
}

ot_status ot_hf_resolve(const char *hub, const ot_hf_ref *r, const char *file, char **out) {
    *out = NULL;
    ot_status st = ot_fetch_check_scheme(hub);
    if (st != OT_OK) return ot_error_wrap(st, "hub URL: ");
    size_t hl = strlen(hub);
    while (hl > 0 && hub[hl - 1] == '/') hl--;
    size_t cap = hl + 3 * (strlen(r->org) + strlen(r->name) + strlen(r->rev) + (file ? strlen(file) : 0)) + 32;
    char *u = malloc(cap);
    if (!u) return ot_errorf(OT_E_NOMEM, "out of memory");
    memcpy(u, hub, hl);
    size_t n = hl;
    u[n++] = '/';
    n = encode_path(u, n, r->org);
    u[n++] = '/';
    n = encode_path(u, n, r->name);
    memcpy(u + n, "/resolve/", 9);
    n += 9;
    n = encode_path(u, n, r->rev);
    u[n++] = '/';
    u[n] = '\0';
    if (file) encode_path(u, n, file);
    *out = u;
    return OT_OK;
}

/* Splits "#sha256=HEX" off `url` into t->sha256; any other fragment is refused. */
static ot_status split_fragment(const char *url, ot_fetch_target *t) {
    const char *hash = strchr(url, '#');
    t->sha256[0] = '\0';
    if (!hash) return OT_OK;
    const char *frag = hash + 1;
    if (strncasecmp(frag, "sha256=", 7) != 0 || !ot_sha256_is_hex(frag + 7))
        return ot_errorf(OT_E_INVALID, "URL '%s': fragment '#%s' is not '#sha256=' followed by 64 hex digits", url, frag);
    for (int i = 0; i < OT_SHA256_HEX_LEN; i++) t->sha256[i] = (char)tolower((unsigned char)frag[7 + i]);
    t->sha256[OT_SHA256_HEX_LEN] = '\0';
    return OT_OK;
}

ot_status ot_fetch_resolve(const char *url, const ot_fetch_opts *opts, ot_fetch_target *out) {
    memset(out, 0, sizeof *out);
    if (!url) return ot_errorf(OT_E_INVALID, "empty URL");
    OT_TRY(split_fragment(url, out));
    if (ot_fetch_is_hf(url)) {
        ot_hf_ref r;
        OT_TRY(ot_hf_parse(url, &r));
        ot_status st = OT_OK;
        if (!r.file)
            st = ot_errorf(OT_E_INVALID, "hf URL '%s' names a repository, not a file (expected hf://ORG/NAME[@REV]/FILE)",
                           url);
        else
            st = ot_hf_resolve(ot_fetch_hub(opts), &r, r.file, &out->url);
        ot_hf_ref_free(&r);
        out->hub = 1;
        return st;
    }
    OT_TRY(ot_fetch_check_scheme(url));
    out->url = strndup(url, strcspn(url, "#"));
    return out->url ? OT_OK : ot_errorf(OT_E_NOMEM, "out of memory");
}

/* Offsets in an http(s) URL: where the path starts (after the authority) and ends (at the
 * query or fragment). */
static void path_span(const char *url, size_t *start, size_t *end) {
    const char *auth = strstr(url, "://");
    size_t a = auth ? (size_t)(auth - url) + 3 : 0;
    size_t e = a + strcspn(url + a, "?#");
    size_t s = a + strcspn(url + a, "/?#");
    *start = s < e ? s : e;
    *end = e;
}

ot_status ot_fetch_url_sibling(const char *url, const char *rel, char **out) {
    *out = NULL;
    OT_TRY(ot_fetch_check_scheme(url));
    size_t ps, pe;
    path_span(url, &ps, &pe);
    size_t dir = ps; /* keeps everything up to and including the last '/' of the path */
    for (size_t i = ps; i < pe; i++)
        if (url[i] == '/') dir = i + 1;
    char *u = malloc(dir + 1 + 3 * strlen(rel) + 1);
    if (!u) return ot_errorf(OT_E_NOMEM, "out of memory");
    memcpy(u, url, dir);
    size_t n = dir;
    if (dir == ps) u[n++] = '/'; /* "http://host" has no path yet */
    encode_path(u, n, rel);
    *out = u;
    return OT_OK;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

ot_status ot_fetch_url_basename(const char *url, char **out) {
    *out = NULL;
    size_t ps, pe;
    path_span(url, &ps, &pe);
    size_t b = ps;
    for (size_t i = ps; i < pe; i++)
        if (url[i] == '/') b = i + 1;
    char *name = malloc(pe - b + 1);
    if (!name) return ot_errorf(OT_E_NOMEM, "out of memory");
    size_t n = 0;
    for (size_t i = b; i < pe; i++) {
        if (url[i] == '%' && i + 2 < pe && hexval(url[i + 1]) >= 0 && hexval(url[i + 2]) >= 0) {
            name[n++] = (char)(hexval(url[i + 1]) * 16 + hexval(url[i + 2]));
            i += 2;
        } else {
            name[n++] = url[i];
        }
    }
    name[n] = '\0';
    if (!name[0] || strchr(name, '/') || ot_fetch_check_relpath(name, "URL") != OT_OK) {
        ot_status st = ot_errorf(OT_E_INVALID, "URL '%s' does not end in a file name (got '%s')", url, name);
        free(name);
        return st;
    }
    *out = name;
    return OT_OK;
}

ot_status ot_fetch_cache_root(const ot_fetch_opts *opts, char **out) {
    *out = NULL;
    const char *dir = opts && opts->cache_dir && opts->cache_dir[0] ? opts->cache_dir : getenv("ONNXTUNE_CACHE");
    if (dir && dir[0]) {
        *out = strdup(dir);
    } else {
        const char *home = getenv("HOME");
        if (!home || !home[0])
            return ot_errorf(OT_E_INVALID, "no cache directory: set $ONNXTUNE_CACHE or $HOME, or pass --cache DIR");
        *out = ot_fetch_join(home, ".cache", "onnxtune");
    }
    return *out ? OT_OK : ot_errorf(OT_E_NOMEM, "out of memory");
}

char *ot_fetch_join(const char *root, const char *sub, const char *name) {
    size_t n = strlen(root) + (sub ? strlen(sub) + 1 : 0) + (name ? strlen(name) + 1 : 0) + 1;
    char *p = malloc(n);
    if (!p) return NULL;
    snprintf(p, n, "%s%s%s%s%s", root, sub ? "/" : "", sub ? sub : "", name ? "/" : "", name ? name : "");
    return p;
}

ot_status ot_fetch_url_key(const char *url, char key[OT_SHA256_HEX_LEN + 1]) {
    return ot_sha256_hex(url, strlen(url), key);
}
