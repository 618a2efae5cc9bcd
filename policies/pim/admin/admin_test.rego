package pim.admin_test

import data.pim.admin
import data.pim.fixtures_test as fx

_pra_at_root := fx.elevation("el-pra", "privileged-role-administrator", "/")

_pra_in_new_york := fx.elevation("el-pra-ny", "privileged-role-administrator", fx.new_york)

_query(scope, elevations) := {
	"principal": fx.perparim,
	"action": "assignments.create",
	"scope": scope,
	"now": fx.now,
	"elevations": elevations,
}

test_allow[note] if {
	some note, tc in {
		"directory grant at the directory": {"scope": "/", "els": [_pra_at_root], "ok": true},
		"directory grant at a unit": {"scope": fx.new_york, "els": [_pra_at_root], "ok": true},
		"unit grant at the unit": {"scope": fx.new_york, "els": [_pra_in_new_york], "ok": true},
		"unit grant at the directory": {"scope": "/", "els": [_pra_in_new_york], "ok": false},
		"invalid scope": {"scope": "//", "els": [_pra_at_root], "ok": false},
		"permanent active assignment": {"scope": "/", "els": [object.union(_pra_at_root, {"activated_at": 0, "expires_at": null})], "ok": true},
		"expired": {"scope": "/", "els": [object.union(_pra_at_root, {"expires_at": fx.now})], "ok": false},
		"expires_at missing": {"scope": "/", "els": [object.remove(_pra_at_root, ["expires_at"])], "ok": false},
		"another role": {"scope": "/", "els": [fx.elevation("el-ua", "user-administrator", "/")], "ok": false},
		"no elevations": {"scope": "/", "els": [], "ok": false},
	}
	inp := _query(tc.scope, tc.els)
	allowed := admin.allow with input as inp
	allowed == tc.ok
	d := admin.decision with input as inp
	d.allow == tc.ok
}

test_scope_defaults_to_directory if {
	not admin.allow with input as object.remove(_query("/", [_pra_in_new_york]), ["scope"])
	admin.allow with input as object.remove(_query("/", [_pra_at_root]), ["scope"])
}

test_decision_reason[note] if {
	some note, tc in {
		"granted": {"els": [_pra_in_new_york, _pra_at_root], "want": {"allow": true, "reason": "granted by privileged-role-administrator at /"}},
		"denied": {"els": [], "want": {"allow": false, "reason": "assignments.create needs an active privileged-role-administrator elevation at /"}},
	}
	d := admin.decision with input as _query("/", tc.els)
	d == tc.want
}

# TOTP invites and resets (mfa.manage) are for those who manage assignments
# at the directory: a unit's administrator may not hand out second factors.
test_mfa_manage[note] if {
	some note, tc in {
		"directory grant": {"els": [_pra_at_root], "ok": true},
		"unit grant": {"els": [_pra_in_new_york], "ok": false},
		"another role": {"els": [fx.elevation("el-ua", "user-administrator", "/")], "ok": false},
		"no elevations": {"els": [], "ok": false},
	}
	inp := object.union(_query("/", tc.els), {"action": "mfa.manage"})
	allowed := admin.allow with input as inp
	allowed == tc.ok
}
