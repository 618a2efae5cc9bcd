package decision

import (
	"net/http"

	"github.com/elevatepdp/elevate/internal/decision/envoy"
)

// ClientTokenHeader carries the gateway's own decision client token on
// forward-auth and ext_authz HTTP checks, as the bare token. It cannot be
// Authorization: there the forwarded request carries the end user's
// credentials, which are the subject, not the caller. The gateway sets it
// on the check only (nginx proxy_set_header in the auth location, Caddy
// header_up in forward_auth, Traefik a headers middleware before
// forwardAuth and one removing it after, Envoy
// authorization_request.headers_to_add), overwriting any a client sent.
// It never reaches the policy input or the logs. The Data API, whose caller
// is the client itself, takes the client's token in Authorization; gRPC
// ext_authz in the call's metadata (envoy.ClientMetadata).
const ClientTokenHeader = "X-Elevate-Client-Token"

// clientCredential is the gateway's credential in a forwarded check.
func clientCredential(h http.Header) envoy.ClientCredential {
	values := h.Values(ClientTokenHeader)
	switch {
	case len(values) == 0:
		return envoy.ClientCredential{}
	case values[0] == "":
		return envoy.ClientCredential{Many: len(values) > 1}
	}
	return envoy.ClientCredential{Authorization: "Bearer " + values[0], Many: len(values) > 1}
}
