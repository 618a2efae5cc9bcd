# Fixtures shared by the policy tests: fixed times, role settings injected
# with `with data.pim.roles as fixtures.roles`, and valid base inputs that
# tests patch with object.union / object.remove.
package pim.fixtures_test

# 2025-01-15T10:00:00Z, a Wednesday (inside the business-hours example).
now := 1736935200000000000

second := 1000000000

minute := 60 * second

hour := 60 * minute

_full_settings := {
	"min_duration": "5m",
	"default_duration": "1h",
	"max_duration": "8h",
	"require_mfa": true,
	"mfa_max_age": "10m",
	"require_justification": true,
	"justification_min_length": 10,
	"justification_pattern": "",
	"require_ticket": false,
	"ticket_pattern": "",
	"require_approval": false,
	"approvers": [],
	"approvals_required": 1,
	"allow_permanent_eligibility": true,
	"max_eligibility": "8760h",
	"pending_timeout": "24h",
}

roles := {
	"user-administrator": {
		"name": "User Administrator",
		"permissions": ["users.*", "groups.read"],
		"settings": object.union(_full_settings, {
			"require_approval": true,
			"approvers": ["role:privileged-role-administrator"],
		}),
	},
	"helpdesk-administrator": {
		"name": "Helpdesk Administrator",
		"permissions": ["users.read", "users.resetPassword"],
		"settings": object.union(_full_settings, {
			"max_duration": "4h",
			"require_justification": false,
			"justification_min_length": 0,
			"require_ticket": true,
			"ticket_pattern": "^INC[0-9]+$",
		}),
	},
	"privileged-role-administrator": {
		"name": "Privileged Role Administrator",
		"permissions": ["roles.*", "roleAssignments.*", "users.read"],
		"settings": object.union(_full_settings, {
			"max_duration": "4h",
			"require_approval": true,
			"approvers": ["role:privileged-role-administrator"],
		}),
	},
	# Optional MFA and justification, patterns without requirements, named
	# approvers and a quorum of two.
	"security-reader": {
		"name": "Security Reader",
		"permissions": ["security.read"],
		"settings": object.union(_full_settings, {
			"min_duration": "0s",
			"require_mfa": false,
			"require_justification": false,
			"justification_min_length": 0,
			"justification_pattern": "^[A-Z]+-[0-9]+: ",
			"ticket_pattern": "^CHG[0-9]+$",
			"require_approval": true,
			"approvers": ["user:Emma.Smith@Perparims.example", "user:alex.johnson@perparims.example"],
			"approvals_required": 2,
		}),
	},
	"no-approvers": {
		"name": "No Approvers",
		"permissions": [],
		"settings": object.union(_full_settings, {"require_approval": true}),
	},
	"defaults-only": {"name": "Defaults Only", "permissions": ["reports.read"], "settings": {}},
	"misconfigured": {
		"name": "Misconfigured",
		"permissions": [],
		"settings": object.union(_full_settings, {"max_duration": "eight hours"}),
	},
}

sophia := "sophia.davis@perparims.example"

perparim := "perparim.abdullahu@perparims.example"

emma := "emma.smith@perparims.example"

new_york := "/administrativeUnits/new-york-office"

eligible(id, principal, role, scope) := {
	"id": id,
	"principal": principal,
	"role": role,
	"scope": scope,
	"type": "eligible",
	"start": null,
	"end": null,
}

elevation(id, role, scope) := {
	"id": id,
	"role": role,
	"scope": scope,
	"activated_at": now - hour,
	"expires_at": now + hour,
}

# A valid activation of User Administrator at / by Sophia (approval required).
activation_input := {
	"now": now,
	"principal": sophia,
	"request": {
		"role": "user-administrator",
		"scope": "/",
		"duration": "2h",
		"justification": "Onboarding the new hires of January",
	},
	"mfa": {"methods": ["pwd", "otp"], "auth_time": now - (2 * minute)},
	"assignments": [eligible("asg-sophia", "Sophia.Davis@Perparims.example", "user-administrator", "/")],
	"elevations": [],
}

# A valid approval of Sophia's request by Perparim, who holds a live
# Privileged Role Administrator elevation at /.
approval_input := {
	"now": now,
	"approver": perparim,
	"action": "approve",
	"justification": "Confirmed with Sophia's manager",
	"request": {
		"id": "req-1",
		"principal": sophia,
		"role": "user-administrator",
		"scope": "/",
		"status": "pending_approval",
		"expires_at": now + (24 * hour),
		"approvals": [],
	},
	"elevations": [elevation("el-pra", "privileged-role-administrator", "/")],
}
