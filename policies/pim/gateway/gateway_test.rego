package pim.gateway_test

import data.pim.fixtures_test as fx
import data.pim.gateway

_unit := "/administrativeUnits/boston"

# A role holding every action of the default routes, so the route table
# tests see each action granted.
_roles := object.union(fx.roles, {"directory-administrator": {
	"name": "Directory Administrator",
	"permissions": ["users.*", "groups.*", "applications.*"],
	"settings": {},
}})

_all_at_root := fx.elevation("el-all", "directory-administrator", "/")

_request(method, path, elevations) := {
	"method": method,
	"path": path,
	"host": "directory.perparims.example",
	"query": {},
	"subject": fx.sophia,
	"now": fx.now,
	"elevations": elevations,
}

_decide(inp) := d if {
	d := gateway.decision with input as inp with data.pim.roles as _roles
}

test_routes[note] if {
	some note, tc in {
		"create a user": {"m": "POST", "p": "/users", "action": "users.create"},
		"list users": {"m": "GET", "p": "/users", "action": "users.read"},
		"head users": {"m": "HEAD", "p": "/users", "action": "users.read"},
		"read a user": {"m": "GET", "p": "/users/17", "action": "users.read"},
		"head a user": {"m": "HEAD", "p": "/users/17", "action": "users.read"},
		"replace a user": {"m": "PUT", "p": "/users/17", "action": "users.update"},
		"patch a user": {"m": "PATCH", "p": "/users/17", "action": "users.update"},
		"delete a user": {"m": "DELETE", "p": "/users/17", "action": "users.delete"},
		"reset a password": {"m": "POST", "p": "/users/17/resetPassword", "action": "users.resetPassword"},
		"email as id": {"m": "GET", "p": "/users/sophia.davis@perparims.example", "action": "users.read"},
		"create a group": {"m": "POST", "p": "/groups", "action": "groups.create"},
		"list groups": {"m": "GET", "p": "/groups", "action": "groups.read"},
		"read a group": {"m": "GET", "p": "/groups/g1", "action": "groups.read"},
		"replace a group": {"m": "PUT", "p": "/groups/g1", "action": "groups.update"},
		"patch a group": {"m": "PATCH", "p": "/groups/g1", "action": "groups.update"},
		"delete a group": {"m": "DELETE", "p": "/groups/g1", "action": "groups.delete"},
		"create an application": {"m": "POST", "p": "/applications", "action": "applications.create"},
		"list applications": {"m": "GET", "p": "/applications", "action": "applications.read"},
		"read an application": {"m": "GET", "p": "/applications/a1", "action": "applications.read"},
		"replace an application": {"m": "PUT", "p": "/applications/a1", "action": "applications.update"},
		"patch an application": {"m": "PATCH", "p": "/applications/a1", "action": "applications.update"},
		"delete an application": {"m": "DELETE", "p": "/applications/a1", "action": "applications.delete"},
		"unit: create a user": {"m": "POST", "p": "/administrativeUnits/boston/users", "action": "users.create", "scope": _unit},
		"unit: read a user": {"m": "GET", "p": "/administrativeUnits/boston/users/17", "action": "users.read", "scope": _unit},
		"unit: delete a group": {"m": "DELETE", "p": "/administrativeUnits/boston/groups/g1", "action": "groups.delete", "scope": _unit},
		"unit: reset a password": {"m": "POST", "p": "/administrativeUnits/boston/users/17/resetPassword", "action": "users.resetPassword", "scope": _unit},
	}
	scope := object.get(tc, "scope", "/")
	d := _decide(_request(tc.m, tc.p, [_all_at_root]))
	d == {
		"allow": true,
		"action": tc.action,
		"scope": scope,
		"role": "directory-administrator",
		"elevation": "el-all",
		"reason": "granted by directory-administrator at /",
	}
}

test_unknown_routes[note] if {
	some note, tc in {
		"POST to an item": {"m": "POST", "p": "/users/17"},
		"PUT to a collection": {"m": "PUT", "p": "/users"},
		"DELETE a collection": {"m": "DELETE", "p": "/groups"},
		"PATCH a collection": {"m": "PATCH", "p": "/applications"},
		"GET resetPassword": {"m": "GET", "p": "/users/17/resetPassword"},
		"resetPassword of a group": {"m": "POST", "p": "/groups/g1/resetPassword"},
		"OPTIONS": {"m": "OPTIONS", "p": "/users"},
		"lowercase method": {"m": "get", "p": "/users"},
		"no method": {"m": "", "p": "/users"},
		"unknown resource": {"m": "GET", "p": "/devices"},
		"too deep": {"m": "GET", "p": "/users/17/manager"},
		"root": {"m": "GET", "p": "/"},
		"empty path": {"m": "GET", "p": ""},
		"relative path": {"m": "GET", "p": "users"},
		"trailing slash": {"m": "GET", "p": "/users/"},
		"double slash": {"m": "GET", "p": "//users"},
		"empty id": {"m": "GET", "p": "/users//resetPassword"},
		"dot id": {"m": "DELETE", "p": "/users/."},
		"dot-dot id": {"m": "DELETE", "p": "/users/.."},
		"dot-dot before a route": {"m": "DELETE", "p": "/x/../users/17"},
		"case of the resource": {"m": "GET", "p": "/Users"},
		"a unit alone": {"m": "GET", "p": "/administrativeUnits/boston"},
		"units": {"m": "GET", "p": "/administrativeUnits"},
		"unit with an unknown route": {"m": "GET", "p": "/administrativeUnits/boston/devices"},
		"nested units": {"m": "GET", "p": "/administrativeUnits/boston/administrativeUnits/x/users"},
	}
	d := _decide(_request(tc.m, tc.p, [_all_at_root]))
	d == {
		"allow": false,
		"action": null,
		"scope": null,
		"role": null,
		"elevation": null,
		"reason": sprintf("no route for %s", [json.marshal(concat(" ", [tc.m, tc.p]))]),
	}
}

test_unknown_route_reason if {
	d := _decide(_request("GET", "/devices/\"x\"", []))
	d.reason == `no route for "GET /devices/\"x\""`
}

test_decisions[note] if {
	helpdesk_in_boston := fx.elevation("el-hd", "helpdesk-administrator", _unit)
	ua := fx.elevation("el-ua", "user-administrator", "/")
	some note, tc in {
		"no elevation": {"m": "POST", "p": "/users", "els": [], "allow": false},
		"role lacks the action": {"m": "DELETE", "p": "/groups/g1", "els": [ua], "allow": false},
		"user administrator creates a user": {"m": "POST", "p": "/users", "els": [ua], "allow": true},
		"user administrator reads a group": {"m": "GET", "p": "/groups/g1", "els": [ua], "allow": true},
		"expired elevation": {"m": "POST", "p": "/users", "els": [object.union(ua, {"expires_at": fx.now})], "allow": false},
		"unit grant in its unit": {"m": "POST", "p": "/administrativeUnits/boston/users/17/resetPassword", "els": [helpdesk_in_boston], "allow": true},
		"unit grant at the directory": {"m": "POST", "p": "/users/17/resetPassword", "els": [helpdesk_in_boston], "allow": false},
		"unit grant in another unit": {"m": "GET", "p": "/administrativeUnits/new-york-office/users/17", "els": [helpdesk_in_boston], "allow": false},
		"unit grant in a sibling prefix": {"m": "GET", "p": "/administrativeUnits/bostonx/users/17", "els": [helpdesk_in_boston], "allow": false},
		"directory grant in a unit": {"m": "PATCH", "p": "/administrativeUnits/boston/users/17", "els": [ua], "allow": true},
	}
	d := _decide(_request(tc.m, tc.p, tc.els))
	d.allow == tc.allow
}

test_allowed_names_the_elevation if {
	d := _decide(_request("POST", "/administrativeUnits/boston/users", [
		fx.elevation("el-hd", "helpdesk-administrator", "/"),
		fx.elevation("el-ua", "user-administrator", _unit),
	]))
	d == {
		"allow": true,
		"action": "users.create",
		"scope": _unit,
		"role": "user-administrator",
		"elevation": "el-ua",
		"reason": "granted by user-administrator at /administrativeUnits/boston",
	}
}

test_denied_without_elevation if {
	d := _decide(_request("POST", "/users", []))
	d == {
		"allow": false,
		"action": "users.create",
		"scope": "/",
		"role": null,
		"elevation": null,
		"reason": "no active elevation grants users.create at /",
	}
}

test_invalid_unit[note] if {
	some note, unit in {"empty": "", "dot-dot": "..", "leading dot": ".hidden"}
	path := concat("/", ["", "administrativeUnits", unit, "users"])
	d := _decide(_request("GET", path, [_all_at_root]))
	d.allow == false
	d.scope == concat("/", ["", "administrativeUnits", unit])
	d.reason == sprintf("invalid scope %s", [json.marshal(d.scope)])
}

test_no_subject[note] if {
	some note, inp in {
		"missing": object.remove(_request("POST", "/users", [_all_at_root]), ["subject"]),
		"blank": object.union(_request("POST", "/users", [_all_at_root]), {"subject": " "}),
		"not a string": object.union(_request("POST", "/users", [_all_at_root]), {"subject": 7}),
	}
	d := _decide(inp)
	d.allow == false
	d.action == "users.create"
	d.reason == "no subject given"
}

test_missing_time_denies if {
	d := _decide(object.remove(_request("POST", "/users", [_all_at_root]), ["now"]))
	d.allow == false
	d.reason == "no active elevation grants users.create at /"
}

test_always_defined[note] if {
	some note, inp in {
		"empty": {},
		"wrong types": {"method": 1, "path": ["users"], "subject": fx.sophia},
		"no elevations": object.remove(_request("GET", "/users", []), ["elevations"]),
	}
	d := _decide(inp)
	d.allow == false
}
