# METADATA
# description: |
#   Envoy external authorization with Elevate's built-in rules: the
#   OPA-Envoy plugin's input (input.attributes, input.parsed_path) mapped
#   onto data.pim.gateway, so `decisions.envoy_query` works out of the box.
#   Replace this package with a policy written for the OPA-Envoy plugin to
#   use that instead.
package envoy.authz

import data.pim.gateway

_http := object.get(input, ["attributes", "request", "http"], {})

# The path as the gateway policy reads it: "/" and the segments, no query.
_path := concat("/", array.concat([""], input.parsed_path)) if count(input.parsed_path) > 0

else := "/"

_request := {
	"method": object.get(_http, "method", ""),
	"path": _path,
	"host": object.get(_http, "host", ""),
	"query": object.get(input, "parsed_query", {}),
	"subject": object.get(input, "subject", null),
	"elevations": object.get(input, "elevations", []),
	"now": object.get(input, "now", null),
}

_decision := d if {
	d := gateway.decision with input as _request
}

# METADATA
# description: True iff data.pim.gateway.decision allows the request.
# entrypoint: true
default allow := false

allow if _decision.allow == true

# METADATA
# description: |
#   The same decision as an ext_authz object: allowed, and the granting
#   role and the reason as headers for the upstream (or the denied answer).
# entrypoint: true
decision := {
	"allowed": allow,
	"headers": {
		"x-elevate-role": object.get(_decision, "role", null),
		"x-elevate-reason": object.get(_decision, "reason", ""),
	},
}
