/*
 * bus_pki: the platform's own CA and the leaf listener's TLS server certificate (ECDSA P-256).
 *
 * The CA is created once and shared by every region (in the bundle); an edge node verifies the hub
 * with it. The server certificate names the hub's domains and loopback (SANs). PEM text in and out:
 * bus_ops writes the files.
 */
#ifndef BUS_PKI_H
#define BUS_PKI_H

#include <stddef.h>

/* A new CA: *key_pem (secret) and *cert_pem, malloc'd. `days` of validity. Returns 0 or -1. */
int bus_pki_make_ca(const char *cn, int days, char **key_pem, char **cert_pem, char *err, size_t errlen);

/* A server certificate signed by the CA, with SANs: DNS names dns[0..ndns) plus localhost,
 * 127.0.0.1 and ::1. Returns 0 or -1. */
int bus_pki_make_server(const char *ca_key_pem, const char *ca_cert_pem, const char *const *dns, size_t ndns,
                        int days, char **key_pem, char **cert_pem, char *err, size_t errlen);

/* The DNS SANs a server certificate gets for these names, as "DNS:a,DNS:b,DNS:localhost" (what
 * bus_pki_cert_info returns for a certificate bus_pki_make_server made; IP SANs are always the
 * loopback ones and not listed). */
int bus_pki_want_sans(const char *const *dns, size_t ndns, char *out, size_t outlen);

/* A certificate's DNS SANs in the same form; its expiry (unix seconds); whether the CA signed it.
 * Returns 0 or -1 (unreadable certificate). */
int bus_pki_cert_info(const char *cert_pem, const char *ca_cert_pem, char *sans, size_t sanslen,
                      long long *not_after, int *signed_by_ca, char *err, size_t errlen);

#endif
