package logging

import "strings"

// CredentialHeaders are the request headers that carry credentials, in
// lower case (names match in any case): the end user's (Authorization with
// any scheme: a bearer token, Basic...), a proxy's, cookies both ways, and a
// gateway's decision client token (X-Elevate-Client-Token). No log line and
// no decision-log event shows their values, only that they were sent.
var CredentialHeaders = []string{"authorization", "proxy-authorization", "cookie", "set-cookie", "x-elevate-client-token"}

// Masked is what a credential's value becomes in a log.
const Masked = "<masked>"

// IsCredentialHeader is whether header name (any case) is one of
// CredentialHeaders.
func IsCredentialHeader(name string) bool {
	for _, n := range CredentialHeaders {
		if strings.EqualFold(name, n) {
			return true
		}
	}
	return false
}

// MaskHeader is header name's value v as a log shows it: a credential's is
// Masked, except that an Authorization or Proxy-Authorization keeps its
// scheme ("Bearer <masked>"), which tells an operator what was sent without
// what it was. Any other header's value is v.
func MaskHeader(name, v string) string {
	if !IsCredentialHeader(name) {
		return v
	}
	return MaskValue(name, v)
}

// MaskValue is v masked as MaskHeader masks a credential, for a header the
// caller has decided to mask (such as a configured subject header).
func MaskValue(name, v string) string {
	if strings.EqualFold(name, "authorization") || strings.EqualFold(name, "proxy-authorization") {
		if scheme, _, ok := strings.Cut(v, " "); ok && scheme != "" {
			return scheme + " " + Masked
		}
	}
	return Masked
}
