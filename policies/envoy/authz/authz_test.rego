package envoy.authz_test

import data.envoy.authz

_now := time.parse_rfc3339_ns("2025-01-15T10:00:00Z")

_roles := {"user-administrator": {"name": "User Administrator", "permissions": ["users.*"], "settings": {}}}

_elevation := {"id": "e1", "role": "user-administrator", "scope": "/", "activated_at": 0, "expires_at": null}

_input(method, path, elevations) := {
	"attributes": {"request": {"http": {"method": method, "path": path, "host": "api.example"}}},
	"parsed_path": [p | some p in split(trim_prefix(path, "/"), "/"); p != ""],
	"parsed_query": {},
	"subject": "sophia@x",
	"elevations": elevations,
	"now": _now,
}

test_requests[note] if {
	some note, tc in {
		"create with an elevation": {"method": "POST", "path": "/users", "elevations": [_elevation], "allow": true},
		"read one with an elevation": {"method": "GET", "path": "/users/17", "elevations": [_elevation], "allow": true},
		"create without": {"method": "POST", "path": "/users", "elevations": [], "allow": false},
		"unknown route": {"method": "GET", "path": "/devices", "elevations": [_elevation], "allow": false},
		"root path": {"method": "GET", "path": "/", "elevations": [_elevation], "allow": false},
	}
	got := authz.allow with input as _input(tc.method, tc.path, tc.elevations) with data.pim.roles as _roles
	got == tc.allow
}

test_decision_names_the_role if {
	d := authz.decision with input as _input("POST", "/users", [_elevation]) with data.pim.roles as _roles
	d.allowed == true
	d.headers["x-elevate-role"] == "user-administrator"
}

test_decision_denies_without_input if {
	d := authz.decision with input as {} with data.pim.roles as _roles
	d.allowed == false
}
