package pim.approval_test

import data.pim.approval
import data.pim.fixtures_test as fx

_decide(inp) := d if {
	d := approval.decision with input as inp with data.pim.roles as fx.roles
}

# The base approval with top-level fields merged in.
_input(patch) := object.union(fx.approval_input, patch)

# The base approval with a top-level field replaced as a whole.
_replace(key, value) := object.union(object.remove(fx.approval_input, [key]), {key: value})

# Whether d reports violation msg (as a boolean, for table tests).
_reported(d, msg) := msg in d.violations

_violations(inp) := _decide(inp).violations

test_approve_allowed if {
	_decide(fx.approval_input) == {"allow": true, "violations": set()}
}

test_deny_allowed if {
	_decide(_input({"action": "deny"})).allow
}

test_self_approval_with_approver_role if {
	# Sophia holds a live Privileged Role Administrator elevation, which makes
	# her an approver of User Administrator, yet she cannot approve herself.
	inp := _input({"approver": fx.sophia})
	_violations(inp) == {"sophia.davis@perparims.example requested this elevation and cannot approve or deny it"}
}

test_self_approval_case_insensitive if {
	inp := _input({"request": {"principal": "Sophia.Davis@Perparims.Example"}, "approver": fx.sophia})
	_decide(inp).allow == false
}

test_self_approval_named_approver if {
	# Emma is named as user:... for Security Reader and still cannot approve her own request.
	inp := _input({
		"approver": fx.emma,
		"request": {"principal": fx.emma, "role": "security-reader"},
		"elevations": [],
	})
	_violations(inp) == {"emma.smith@perparims.example requested this elevation and cannot approve or deny it"}
}

test_role_approver[note] if {
	some note, tc in {
		"live at the directory": {"elevations": [fx.elevation("el-1", "privileged-role-administrator", "/")], "ok": true},
		"directory covers a unit request": {
			"elevations": [fx.elevation("el-1", "privileged-role-administrator", "/")],
			"scope": fx.new_york, "ok": true,
		},
		"unit covers its own request": {
			"elevations": [fx.elevation("el-1", "privileged-role-administrator", fx.new_york)],
			"scope": fx.new_york, "ok": true,
		},
		"unit does not cover a directory request": {"elevations": [fx.elevation("el-1", "privileged-role-administrator", fx.new_york)], "ok": false},
		"permanent active": {"elevations": [{"id": "el-1", "role": "privileged-role-administrator", "scope": "/", "activated_at": 0, "expires_at": null}], "ok": true},
		"expired": {"elevations": [{"id": "el-1", "role": "privileged-role-administrator", "scope": "/", "activated_at": 0, "expires_at": fx.now}], "ok": false},
		"expires_at missing": {"elevations": [{"id": "el-1", "role": "privileged-role-administrator", "scope": "/", "activated_at": 0}], "ok": false},
		"another role": {"elevations": [fx.elevation("el-1", "user-administrator", "/")], "ok": false},
		"no elevations": {"elevations": [], "ok": false},
	}
	inp := _input({"elevations": tc.elevations, "request": {"scope": object.get(tc, "scope", "/")}})
	d := _decide(inp)
	d.allow == tc.ok
	msg := sprintf(`"perparim.abdullahu@perparims.example" is not an approver for User Administrator at %s`, [object.get(tc, "scope", "/")])
	_reported(d, msg) != tc.ok
}

test_user_approver[note] if {
	some note, tc in {
		"listed, case-insensitive": {"approver": fx.emma, "ok": true},
		"listed": {"approver": "alex.johnson@perparims.example", "ok": true},
		"not listed": {"approver": fx.perparim, "ok": false},
	}
	inp := _input({"approver": tc.approver, "request": {"role": "security-reader"}, "elevations": []})
	_decide(inp).allow == tc.ok
}

test_no_approvers_configured if {
	inp := _input({"request": {"role": "no-approvers"}})
	_violations(inp) == {"No Approvers has no approvers configured: nobody may approve its requests"}
}

test_unknown_role if {
	_violations(_input({"request": {"role": "no-such-role"}})) == {`unknown role "no-such-role"`}
}

test_action[note] if {
	some note, tc in {
		"approve": {"action": "approve", "want": set()},
		"deny": {"action": "deny", "want": set()},
		"other": {"action": "maybe", "want": {`action "maybe" is neither "approve" nor "deny"`}},
		"upper case": {"action": "APPROVE", "want": {`action "APPROVE" is neither "approve" nor "deny"`}},
	}
	_violations(_input({"action": tc.action})) == tc.want
}

test_action_missing if {
	_violations(object.remove(fx.approval_input, ["action"])) == {`action null is neither "approve" nor "deny"`}
}

test_justification[note] if {
	some note, j in {"empty": "", "blank": " \n ", "null": null}
	_violations(_input({"justification": j})) == {"a justification is required to approve or deny a request"}
}

# Only a pending request can be decided: every other status the store knows
# (store.Status) is refused, the live and scheduled ones above all, since the
# Data API lets a caller ask this policy about any request it makes up.
test_not_pending[note] if {
	some note, status in {
		"active": "active",
		"scheduled": "scheduled",
		"denied": "denied",
		"cancelled": "cancelled",
		"timed out": "timed_out",
		"deactivated": "deactivated",
		"revoked": "revoked",
		"expired": "expired",
		"approved (not a status)": "approved",
		"upper case": "PENDING_APPROVAL",
		"empty": "",
		"missing": null,
	}
	want := sprintf(`request "req-1" is not pending approval (status %s)`, [json.marshal(status)])
	_violations(_input({"request": {"status": status}})) == {want}
}

test_pending_deadline[note] if {
	some note, tc in {
		"just before": {"expires_at": fx.now + 1, "want": set()},
		"exactly now": {"expires_at": fx.now, "want": {"the request expired at 2025-01-15T10:00:00Z"}},
		"passed": {"expires_at": fx.now - fx.hour, "want": {"the request expired at 2025-01-15T09:00:00Z"}},
		"missing": {"expires_at": null, "want": {"the request has no pending deadline (request.expires_at)"}},
	}
	_violations(_input({"request": {"expires_at": tc.expires_at}})) == tc.want
}

test_already_approved[note] if {
	some note, tc in {
		"by the same approver": {"approver": "Emma.Smith@perparims.example", "ok": false},
		"by another approver": {"approver": "alex.johnson@perparims.example", "ok": true},
	}
	approvals := [{"approver": tc.approver, "at": fx.now - fx.minute, "justification": "ok"}]
	inp := _input({"approver": fx.emma, "request": {"role": "security-reader", "approvals": approvals}})
	d := _decide(inp)
	d.allow == tc.ok
	_reported(d, "emma.smith@perparims.example has already approved this request") != tc.ok
}

test_missing_approver if {
	d := _decide(object.remove(fx.approval_input, ["approver"]))
	d.allow == false
	"the approver is missing" in d.violations
}

test_missing_now if {
	d := _decide(object.remove(fx.approval_input, ["now"]))
	d.allow == false
	"the current time (input.now, Unix nanoseconds) is missing" in d.violations
}

test_missing_request if {
	d := _decide(_replace("request", null))
	d.allow == false
	"unknown role null" in d.violations
}

test_missing_requester if {
	inp := object.union(object.remove(fx.approval_input, ["request"]), {"request": object.remove(fx.approval_input.request, ["principal"])})
	_violations(inp) == {"the request's principal is missing"}
}
