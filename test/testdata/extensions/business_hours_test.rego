package pim.activation_business_hours_test

import data.pim.activation

# An otherwise valid activation of Privileged Role Administrator at time now.
_activation(now) := {
	"now": now,
	"principal": "perparim.abdullahu@perparims.example",
	"request": {"role": "privileged-role-administrator", "duration": "1h", "justification": "Quarterly role review"},
	"mfa": {"methods": ["otp"], "auth_time": now},
	"assignments": [{
		"id": "asg-1", "principal": "perparim.abdullahu@perparims.example",
		"role": "privileged-role-administrator", "scope": "/",
		"type": "eligible", "start": null, "end": null,
	}],
	"elevations": [],
}

_roles := {"privileged-role-administrator": {
	"name": "Privileged Role Administrator",
	"permissions": ["roles.*"],
	"settings": {"require_approval": false, "max_duration": "4h"},
}}

_message := "Privileged Role Administrator can only be activated 08:00-18:00 UTC, Monday to Friday"

test_inside_business_hours[note] if {
	some note, at in {
		"Monday 08:00": "2025-01-13T08:00:00Z",
		"Wednesday 10:00": "2025-01-15T10:00:00Z",
		"Friday 17:59": "2025-01-17T17:59:59Z",
	}
	d := activation.decision with input as _activation(time.parse_rfc3339_ns(at)) with data.pim.roles as _roles
	d.allow
}

test_outside_business_hours[note] if {
	some note, at in {
		"Wednesday 07:59": "2025-01-15T07:59:59Z",
		"Wednesday 18:00": "2025-01-15T18:00:00Z",
		"Saturday 10:00": "2025-01-18T10:00:00Z",
	}
	d := activation.decision with input as _activation(time.parse_rfc3339_ns(at)) with data.pim.roles as _roles
	not d.allow
	d.violations == {_message}
}

test_other_roles_unaffected if {
	inp := object.union(_activation(time.parse_rfc3339_ns("2025-01-18T10:00:00Z")), {"request": {"role": "reports-reader"}})
	d := activation.decision with input as inp with data.pim.roles as {"reports-reader": {"settings": {}}}
	not _message in d.violations
}
