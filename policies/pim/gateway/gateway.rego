# METADATA
# description: |
#   Gateway authorization (forward-auth): maps the HTTP request a gateway
#   forwards (nginx auth_request, Traefik ForwardAuth, Caddy forward_auth)
#   to an action and a scope, and asks data.pim.authz whether one of the
#   subject's live elevations grants it. The routes below describe a
#   directory API (users, groups, applications): they are the default,
#   meant to be replaced by the routes of the API you protect.
package pim.gateway

import data.pim.authz
import data.pim.lib

# METADATA
# description: |
#   Always defined: allow, the action and scope the request maps to (null
#   for an unknown route), the role and id of the granting elevation (or
#   null) and a short reason.
# entrypoint: true
decision := _denied(null, null, sprintf("no route for %s", [lib.quote(concat(" ", [_method, _path]))])) if {
	not _route
} else := _denied(_route.action, _route.scope, "no subject given") if {
	lib.text(object.get(input, "subject", null)) == ""
} else := {
	"allow": d.allow,
	"action": _route.action,
	"scope": _route.scope,
	"role": object.get(d, ["elevation", "role"], null),
	"elevation": object.get(d, ["elevation", "id"], null),
	"reason": d.reason,
} if {
	d := authz.decision with input as {
		"subject": input.subject,
		"action": _route.action,
		"scope": _route.scope,
		"now": object.get(input, "now", null),
		"elevations": object.get(input, "elevations", []),
	}
}

_denied(action, scope, reason) := {
	"allow": false,
	"action": action,
	"scope": scope,
	"role": null,
	"elevation": null,
	"reason": reason,
}

# Methods are case-sensitive (RFC 9110): "get" is no GET, so it matches no
# route rather than being read as one.
_method := _string(object.get(input, "method", ""))

_path := _string(object.get(input, "path", ""))

_string(x) := x if is_string(x)

else := ""

# The path's segments: "/users/17" is ["users", "17"]. A path not starting
# with "/" has none, so it matches no route.
_segments := split(substring(_path, 1, -1), "/") if startswith(_path, "/")

# An optional administrative-unit prefix sets the scope; the rest of the
# path is the route. data.pim.authz denies an invalid unit ("", "..").
_target := {
	"scope": concat("/", ["", "administrativeUnits", _segments[1]]),
	"route": array.slice(_segments, 2, count(_segments)),
} if {
	_segments[0] == "administrativeUnits"
	count(_segments) > 2
} else := {"scope": "/", "route": _segments}

_route := {"action": action, "scope": _target.scope} if {
	action := _action(_target.route, _method)
}

_resources := {"users", "groups", "applications"}

# Verbs on a collection (/users) and on one of its items (/users/{id}).
# HEAD reads as GET does.
_collection_verbs := {"GET": "read", "HEAD": "read", "POST": "create"}

_item_verbs := {"GET": "read", "HEAD": "read", "PUT": "update", "PATCH": "update", "DELETE": "delete"}

_action([resource], method) := concat(".", [resource, _collection_verbs[method]]) if {
	resource in _resources
}

_action([resource, id], method) := concat(".", [resource, _item_verbs[method]]) if {
	resource in _resources
	_id(id)
}

_action(["users", id, "resetPassword"], "POST") := "users.resetPassword" if _id(id)

# An item id is any segment but "", "." and "..", which an upstream could
# read as another path.
_id(id) if not id in {"", ".", ".."}
