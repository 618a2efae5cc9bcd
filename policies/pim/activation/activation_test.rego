package pim.activation_test

import data.pim.activation
import data.pim.fixtures_test as fx

_decide(inp) := d if {
	d := activation.decision with input as inp with data.pim.roles as fx.roles
}

# The base activation with request fields replaced (object.union merges).
_request(patch) := object.union(fx.activation_input, {"request": patch})

# The base activation with top-level fields replaced.
_input(patch) := object.union(fx.activation_input, patch)

# The base activation with a top-level field replaced as a whole.
_replace(key, value) := object.union(object.remove(fx.activation_input, [key]), {key: value})

# An activation of Security Reader (optional MFA, justification pattern).
_security_reader(request) := _input({
	"request": object.union({"role": "security-reader", "justification": "SEC-1: review sign-in alerts"}, request),
	"assignments": [fx.eligible("asg-sr", fx.sophia, "security-reader", "/")],
})

# The violations of the base activation with patch applied to the request.
# Whether d reports violation msg (as a boolean, for table tests).
_reported(d, msg) := msg in d.violations

_violations(patch) := _decide(_request(patch)).violations

_ua := "User Administrator"

_helpdesk := {
	"role": "helpdesk-administrator",
	"scope": fx.new_york,
	"ticket": {"system": "ServiceNow", "number": "INC123456"},
}

_helpdesk_input(ticket) := object.union(fx.activation_input, {
	"principal": fx.emma,
	"request": object.union(object.remove(_helpdesk, ["ticket"]), ticket),
	"assignments": [fx.eligible("asg-emma", fx.emma, "helpdesk-administrator", fx.new_york)],
})

test_valid_activation_allowed if {
	d := _decide(fx.activation_input)
	d == {
		"allow": true,
		"requires_approval": true,
		"approvals_required": 1,
		"duration": "2h",
		"duration_ns": 2 * fx.hour,
		"start": fx.now,
		"expires_at": fx.now + (2 * fx.hour),
		"assignment": "asg-sophia",
		"violations": set(),
	}
}

test_defaults_applied if {
	d := _decide(json.remove(fx.activation_input, ["request/duration", "request/scope"]))
	d.allow
	d.duration == "1h"
	d.duration_ns == fx.hour
	d.start == fx.now
	d.expires_at == fx.now + fx.hour
}

test_empty_duration_uses_default if {
	d := _decide(_request({"duration": ""}))
	d.allow
	d.duration == "1h"
}

test_no_approval_role if {
	d := _decide(_helpdesk_input({"ticket": _helpdesk.ticket}))
	d.allow
	d.requires_approval == false
	d.approvals_required == 0
	d.assignment == "asg-emma"
}

test_unknown_role_still_decided if {
	d := _decide(_request({"role": "no-such-role", "duration": ""}))
	d.allow == false
	d.violations == {`unknown role "no-such-role"`}
	d.requires_approval == false
	d.approvals_required == 0
	d.duration == null
	d.duration_ns == null
	d.expires_at == null
	d.assignment == null
	d.start == fx.now
}

test_missing_request if {
	d := _decide(object.remove(fx.activation_input, ["request"]))
	d.allow == false
	"unknown role null" in d.violations
}

test_missing_now if {
	d := _decide(object.remove(fx.activation_input, ["now"]))
	d.allow == false
	"the current time (input.now, Unix nanoseconds) is missing" in d.violations
	d.start == null
}

test_misconfigured_role if {
	inp := _input({
		"request": {"role": "misconfigured"},
		"assignments": [fx.eligible("asg-m", fx.sophia, "misconfigured", "/")],
	})
	d := _decide(inp)
	d.violations == {`role Misconfigured is misconfigured: max_duration "eight hours" is not a duration`}
}

test_invalid_scope[note] if {
	some note, scope in {
		"no leading slash": "a",
		"trailing slash": "/a/",
		"double slash": "//",
		"dot-dot": "/a/../b",
		"empty": "",
	}
	msg := sprintf(`invalid scope "%s": use "/" or a path such as "/administrativeUnits/new-york-office"`, [scope])
	_violations({"scope": scope}) == {msg}
}

test_scope_coverage[note] if {
	some note, tc in {
		"directory covers unit": {"granted": "/", "requested": fx.new_york, "ok": true},
		"unit covers itself": {"granted": fx.new_york, "requested": fx.new_york, "ok": true},
		"unit covers below": {"granted": fx.new_york, "requested": concat("", [fx.new_york, "/sales"]), "ok": true},
		"unit does not cover directory": {"granted": fx.new_york, "requested": "/", "ok": false},
		"unit does not cover sibling prefix": {"granted": "/administrativeUnits/new-york", "requested": fx.new_york, "ok": false},
		"child does not cover parent": {"granted": fx.new_york, "requested": "/administrativeUnits", "ok": false},
	}
	inp := _input({
		"request": {"scope": tc.requested},
		"assignments": [fx.eligible("asg-1", fx.sophia, "user-administrator", tc.granted)],
	})
	d := _decide(inp)
	d.allow == tc.ok
	not_eligible := sprintf("sophia.davis@perparims.example has no eligible assignment for User Administrator at %s", [tc.requested])
	_reported(d, not_eligible) != tc.ok
}

test_eligibility[note] if {
	some note, tc in {
		"case-insensitive principal": {"patch": {"principal": "SOPHIA.DAVIS@PERPARIMS.EXAMPLE"}, "ok": true},
		"active assignment is not eligibility": {"patch": {"type": "active"}, "ok": false},
		"someone else's assignment": {"patch": {"principal": fx.emma}, "ok": false},
		"another role": {"patch": {"role": "helpdesk-administrator"}, "ok": false},
		"starts exactly now": {"patch": {"start": fx.now}, "ok": true},
		"not started yet": {"patch": {"start": fx.now + 1}, "ok": false},
		"ends exactly now": {"patch": {"end": fx.now}, "ok": false},
		"ended": {"patch": {"end": fx.now - fx.hour}, "ok": false},
		"end missing fails closed": {"remove": "end", "ok": false},
	}
	base := fx.eligible("asg-1", fx.sophia, "user-administrator", "/")
	assignment := object.remove(object.union(base, object.get(tc, "patch", {})), [object.get(tc, "remove", "")])
	d := _decide(_input({"assignments": [assignment]}))
	d.allow == tc.ok
}

test_no_assignments if {
	d := _decide(object.remove(fx.activation_input, ["assignments"]))
	d.violations == {"sophia.davis@perparims.example has no eligible assignment for User Administrator at /"}
	d.assignment == null
}

test_duration_bounds[note] if {
	some note, tc in {
		"exactly max": {"d": "8h", "want": set()},
		"max plus 1ns": {"d": "8h0m0.000000001s", "want": {"duration 8h0m0.000000001s exceeds the maximum of 8h for User Administrator"}},
		"over max": {"d": "9h", "want": {"duration 9h exceeds the maximum of 8h for User Administrator"}},
		"exactly min": {"d": "5m", "want": set()},
		"min minus 1ns": {"d": "4m59.999999999s", "want": {"duration 4m59.999999999s is below the minimum of 5m for User Administrator"}},
		"negative": {"d": "-1h", "want": {"duration -1h is below the minimum of 5m for User Administrator"}},
		"does not parse": {"d": "two hours", "want": {`duration "two hours" is not a valid duration such as "30m" or "2h"`}},
		"not a string": {"d": 7200, "want": {`duration 7200 is not a valid duration such as "30m" or "2h"`}},
	}
	_violations({"duration": tc.d}) == tc.want
}

test_unparsable_duration_still_decided if {
	d := _decide(_request({"duration": "soon"}))
	d.allow == false
	d.duration == "soon"
	d.duration_ns == null
	d.expires_at == null
}

test_zero_duration_must_be_positive if {
	_decide(_security_reader({"duration": "0s"})).violations == {"duration 0s must be positive"}
}

test_elevation_outlasting_eligibility[note] if {
	some note, tc in {
		"ends with the assignment": {"d": "1h", "ok": true},
		"outlasts the assignment": {"d": "1h0m0.000000001s", "ok": false},
	}
	assignment := object.union(fx.eligible("asg-1", fx.sophia, "user-administrator", "/"), {"end": fx.now + fx.hour})
	d := _decide(_input({"request": {"duration": tc.d}, "assignments": [assignment]}))
	d.allow == tc.ok
	d.assignment == "asg-1"
	msg := "the elevation would end at 2025-01-15T11:00:00.000000001Z, after the eligible assignment asg-1 ends at 2025-01-15T11:00:00Z"
	_reported(d, msg) != tc.ok
}

test_outlast_message if {
	assignment := object.union(fx.eligible("asg-1", fx.sophia, "user-administrator", "/"), {"end": fx.now + fx.hour})
	d := _decide(_input({"assignments": [assignment]}))
	d.violations == {"the elevation would end at 2025-01-15T12:00:00Z, after the eligible assignment asg-1 ends at 2025-01-15T11:00:00Z"}
}

test_prefers_assignment_that_lasts if {
	short := object.union(fx.eligible("asg-short", fx.sophia, "user-administrator", "/"), {"end": fx.now + fx.hour})
	long := fx.eligible("asg-long", fx.sophia, "user-administrator", "/")
	d := _decide(_input({"assignments": [short, long]}))
	d.allow
	d.assignment == "asg-long"
}

test_scheduled_start[note] if {
	some note, tc in {
		"in the future": {"start": fx.now + fx.hour, "want": set()},
		"exactly now": {"start": fx.now, "want": set()},
		"in the past": {"start": fx.now - 1, "want": {"the scheduled start 2025-01-15T09:59:59.999999999Z is in the past"}},
		"not a number": {"start": "tomorrow", "want": {`start "tomorrow" is not a time in Unix nanoseconds`}},
	}
	_violations({"start": tc.start}) == tc.want
}

# Decided again at its start, a scheduled activation carries the time it was
# requested: its start and its second factor are judged as at the request;
# everything else (here: a live elevation of the role) as at now.
test_decided_again_at_start[note] if {
	some note, tc in {
		"at its start": {"requested_at": fx.now - (2 * fx.hour), "start": fx.now, "ok": true},
		"late, still in its time": {"requested_at": fx.now - (2 * fx.hour), "start": fx.now - fx.minute, "ok": true},
		"start before the request": {"requested_at": fx.now - (2 * fx.hour), "start": fx.now - (3 * fx.hour), "ok": false},
		"requested_at not a number": {"requested_at": "yesterday", "start": fx.now - fx.minute, "ok": false},
		"role live at the scope": {
			"requested_at": fx.now - (2 * fx.hour), "start": fx.now,
			"elevations": [fx.elevation("el-1", "user-administrator", "/")], "ok": false,
		},
	}
	inp := object.union(fx.activation_input, {
		"request": {"requested_at": tc.requested_at, "start": tc.start},
		"mfa": {"methods": ["otp"], "auth_time": tc.requested_at},
		"elevations": object.get(tc, "elevations", []),
	})
	_decide(inp).allow == tc.ok
}

test_scheduled_start_sets_times if {
	d := _decide(_request({"start": fx.now + fx.hour}))
	d.start == fx.now + fx.hour
	d.expires_at == fx.now + (3 * fx.hour)
}

test_scheduled_start_outside_eligibility if {
	assignment := object.union(fx.eligible("asg-1", fx.sophia, "user-administrator", "/"), {"end": fx.now + fx.hour})
	d := _decide(_input({"request": {"start": fx.now + (2 * fx.hour)}, "assignments": [assignment]}))
	d.violations == {"sophia.davis@perparims.example has no eligible assignment for User Administrator at /"}
}

test_justification[note] if {
	some note, tc in {
		"missing": {"j": null, "want": {"a justification is required to activate User Administrator"}},
		"blank": {"j": "  \t ", "want": {"a justification is required to activate User Administrator"}},
		"too short": {"j": "too short", "want": {"the justification must be at least 10 characters long for User Administrator (got 9)"}},
		"short after trimming": {"j": "  abcdefghi   ", "want": {"the justification must be at least 10 characters long for User Administrator (got 9)"}},
		"exactly minimum": {"j": "  abcdefghij  ", "want": set()},
		"not a string": {"j": 1234567890, "want": {"a justification is required to activate User Administrator"}},
	}
	_violations({"justification": tc.j}) == tc.want
}

test_justification_not_required if {
	_decide(_helpdesk_input({"ticket": _helpdesk.ticket})).allow
}

test_justification_pattern[note] if {
	some note, tc in {
		"optional and absent": {"j": "", "ok": true},
		"matches": {"j": "SEC-42: investigate sign-in alert", "ok": true},
		"does not match": {"j": "looking around", "ok": false},
	}
	d := _decide(_security_reader({"justification": tc.j}))
	d.allow == tc.ok
	msg := `the justification does not match the pattern "^[A-Z]+-[0-9]+: " required for Security Reader`
	_reported(d, msg) != tc.ok
}

test_ticket_required[note] if {
	some note, tc in {
		"valid": {"ticket": {"system": "ServiceNow", "number": "INC123456"}, "want": set()},
		"missing": {"ticket": null, "want": {"a ticket (system and number) is required to activate Helpdesk Administrator"}},
		"number missing": {"ticket": {"system": "ServiceNow"}, "want": {"a ticket (system and number) is required to activate Helpdesk Administrator"}},
		"system blank": {"ticket": {"system": " ", "number": "INC1"}, "want": {"a ticket (system and number) is required to activate Helpdesk Administrator"}},
		"number does not match": {"ticket": {"system": "ServiceNow", "number": "12345"}, "want": {`ticket number "12345" does not match the pattern "^INC[0-9]+$" required for Helpdesk Administrator`}},
	}
	_decide(_helpdesk_input({"ticket": tc.ticket})).violations == tc.want
}

test_ticket_pattern_when_not_required[note] if {
	some note, tc in {
		"no ticket": {"ticket": {}, "ok": true},
		"matching number": {"ticket": {"system": "Jira", "number": "CHG42"}, "ok": true},
		"number does not match": {"ticket": {"system": "Jira", "number": "INC42"}, "ok": false},
	}
	_decide(_security_reader({"ticket": tc.ticket})).allow == tc.ok
}

test_mfa[note] if {
	some note, tc in {
		"otp": {"mfa": {"methods": ["pwd", "otp"], "auth_time": fx.now}, "ok": true},
		"fido upper case": {"mfa": {"methods": ["FIDO"], "auth_time": fx.now}, "ok": true},
		"hardware key": {"mfa": {"methods": ["hwk"], "auth_time": fx.now}, "ok": true},
		"password only": {"mfa": {"methods": ["pwd"], "auth_time": fx.now}, "ok": false},
		"sms": {"mfa": {"methods": ["pwd", "sms"], "auth_time": fx.now}, "ok": false},
		"no methods": {"mfa": {"auth_time": fx.now}, "ok": false},
		"no mfa": {"mfa": null, "ok": false},
	}
	d := _decide(_replace("mfa", tc.mfa))
	d.allow == tc.ok
	_reported(d, "multi-factor authentication is required to activate User Administrator") != tc.ok
}

test_mfa_age[note] if {
	some note, tc in {
		"fresh": {"age": fx.minute, "ok": true},
		"exactly max age": {"age": 10 * fx.minute, "ok": true},
		"max age plus 1ns": {"age": (10 * fx.minute) + 1, "ok": false},
		"an hour old": {"age": fx.hour, "ok": false},
	}
	d := _decide(_input({"mfa": {"methods": ["otp"], "auth_time": fx.now - tc.age}}))
	d.allow == tc.ok
	msg := "the multi-factor authentication is older than 10m, the maximum for User Administrator: authenticate again"
	_reported(d, msg) != tc.ok
}

test_mfa_time_missing[note] if {
	some note, mfa in {
		"null": {"methods": ["otp"], "auth_time": null},
		"absent": {"methods": ["otp"]},
		"not a number": {"methods": ["otp"], "auth_time": "recently"},
	}
	want := {"the time of the multi-factor authentication (mfa.auth_time) is missing"}
	_decide(_replace("mfa", mfa)).violations == want
}

test_mfa_not_required if {
	_decide(object.union(_security_reader({}), {"mfa": null})).allow
}

test_already_active[note] if {
	some note, tc in {
		"live at the same scope": {"e": {"activated_at": fx.now - fx.hour, "expires_at": fx.now + fx.hour}, "ok": false},
		"permanent at the same scope": {"e": {"activated_at": fx.now - fx.hour, "expires_at": null}, "ok": false},
		"expired": {"e": {"activated_at": fx.now - fx.hour, "expires_at": fx.now}, "ok": true},
		"expires_at missing is not live": {"e": {"activated_at": fx.now - fx.hour}, "ok": true},
		"at another scope": {"e": {"scope": fx.new_york, "expires_at": fx.now + fx.hour}, "ok": true},
		"another role": {"e": {"role": "helpdesk-administrator", "expires_at": fx.now + fx.hour}, "ok": true},
	}
	e := object.union({"id": "el-1", "role": "user-administrator", "scope": "/"}, tc.e)
	d := _decide(_input({"elevations": [e]}))
	d.allow == tc.ok
	_reported(d, "User Administrator is already active at /") != tc.ok
}

test_several_violations_reported if {
	inp := _input({
		"request": {"duration": "9h", "justification": ""},
		"mfa": null,
	})
	_decide(inp).violations == {
		"duration 9h exceeds the maximum of 8h for User Administrator",
		"a justification is required to activate User Administrator",
		"multi-factor authentication is required to activate User Administrator",
	}
}

test_requirement_flags_fail_closed if {
	# Only an explicit false turns a requirement off.
	roles := object.union(fx.roles, {"user-administrator": {"settings": {"require_mfa": "no", "require_approval": null}}})
	d := activation.decision with input as _replace("mfa", null) with data.pim.roles as roles
	d.violations == {"multi-factor authentication is required to activate User Administrator"}
	d.requires_approval == true
}
