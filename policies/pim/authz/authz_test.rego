package pim.authz_test

import data.pim.authz
import data.pim.fixtures_test as fx

_ua_at_root := fx.elevation("el-ua", "user-administrator", "/")

_ua_in_new_york := fx.elevation("el-ny", "user-administrator", fx.new_york)

_query(action, scope, elevations) := {
	"subject": fx.sophia,
	"action": action,
	"scope": scope,
	"now": fx.now,
	"elevations": elevations,
}

_decide(inp) := d if {
	d := authz.decision with input as inp with data.pim.roles as fx.roles
}

_allow(inp) := a if {
	a := authz.allow with input as inp with data.pim.roles as fx.roles
}

test_allow[note] if {
	some note, tc in {
		"wildcard permission": {"action": "users.create", "ok": true},
		"exact permission": {"action": "groups.read", "ok": true},
		"wildcard is one segment": {"action": "users.a.b", "ok": false},
		"permission not held": {"action": "groups.write", "ok": false},
		"another role's permission": {"action": "roles.update", "ok": false},
		"unit scope at the directory": {"action": "users.create", "scope": fx.new_york, "ok": true},
		"below a unit": {"action": "users.create", "scope": "/administrativeUnits/new-york-office/sales", "els": [_ua_in_new_york], "ok": true},
		"unit grant at the directory": {"action": "users.create", "els": [_ua_in_new_york], "ok": false},
		"unit grant at a sibling prefix": {"action": "users.create", "scope": "/administrativeUnits/new-york-officex", "els": [_ua_in_new_york], "ok": false},
		"invalid scope": {"action": "users.create", "scope": "/a/../b", "ok": false},
		"no elevations": {"action": "users.create", "els": [], "ok": false},
		"expired": {"action": "users.create", "els": [object.union(_ua_at_root, {"expires_at": fx.now})], "ok": false},
		"not yet active": {"action": "users.create", "els": [object.union(_ua_at_root, {"activated_at": fx.now + 1})], "ok": false},
		"expires_at missing": {"action": "users.create", "els": [object.remove(_ua_at_root, ["expires_at"])], "ok": false},
		"permanent": {"action": "users.create", "els": [object.union(_ua_at_root, {"expires_at": null})], "ok": true},
		"granted scope empty": {"action": "users.create", "scope": fx.new_york, "els": [fx.elevation("el-e", "user-administrator", "")], "ok": false},
		"granted scope with a trailing slash": {"action": "users.create", "scope": fx.new_york, "els": [fx.elevation("el-t", "user-administrator", "/administrativeUnits/")], "ok": false},
		"granted scope not a string": {"action": "users.create", "els": [fx.elevation("el-n", "user-administrator", 1)], "ok": false},
		"activated_at missing": {"action": "users.create", "els": [object.remove(_ua_at_root, ["activated_at"])], "ok": true},
		"activated_at not a number": {"action": "users.create", "els": [object.union(_ua_at_root, {"activated_at": "0"})], "ok": false},
		"expires_at not a number": {"action": "users.create", "els": [object.union(_ua_at_root, {"expires_at": "9"})], "ok": false},
		"action not a string": {"action": ["users.create"], "ok": false},
		"unknown role": {"action": "users.create", "els": [fx.elevation("el-x", "no-such-role", "/")], "ok": false},
	}
	inp := _query(tc.action, object.get(tc, "scope", "/"), object.get(tc, "els", [_ua_at_root]))
	_allow(inp) == tc.ok
	_decide(inp).allow == tc.ok
}

test_scope_defaults_to_directory if {
	inp := object.remove(_query("users.create", "/", [_ua_in_new_york]), ["scope"])
	not _allow(inp)
	_decide(inp).reason == "no active elevation grants users.create at /"
}

test_allow_without_input if {
	not _allow({})
}

test_decision_granted if {
	_decide(_query("users.create", fx.new_york, [_ua_at_root])) == {
		"allow": true,
		"elevation": {"id": "el-ua", "role": "user-administrator", "scope": "/", "expires_at": fx.now + fx.hour},
		"reason": "granted by user-administrator at /",
	}
}

test_decision_first_granting_elevation if {
	helpdesk := fx.elevation("el-hd", "helpdesk-administrator", "/")
	d := _decide(_query("users.read", fx.new_york, [_ua_in_new_york, helpdesk, _ua_at_root]))
	d.elevation.id == "el-ny"
	d.reason == sprintf("granted by user-administrator at %s", [fx.new_york])
}

test_decision_denied[note] if {
	some note, tc in {
		"no grant": {"inp": _query("users.create", "/", []), "reason": "no active elevation grants users.create at /"},
		"invalid scope": {"inp": _query("users.create", "/a/", [_ua_at_root]), "reason": `invalid scope "/a/"`},
		"no action": {"inp": {}, "reason": "no action given"},
	}
	_decide(tc.inp) == {"allow": false, "elevation": null, "reason": tc.reason}
}
