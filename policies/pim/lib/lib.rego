# METADATA
# description: |
#   Helpers shared by the Elevate policies: the scope model, elevation and
#   assignment time windows, role settings with their defaults, and permission
#   matching. Every function fails closed: malformed input yields false or
#   undefined, never a grant.
package pim.lib

# METADATA
# description: |
#   Role settings applied when a role omits a key. A role's own settings
#   always win (see settings).
default_settings := {
	"min_duration": "5m",
	"default_duration": "1h",
	"max_duration": "8h",
	"require_mfa": true,
	"mfa_max_age": "10m",
	"require_justification": true,
	"justification_min_length": 0,
	"justification_pattern": "",
	"require_ticket": false,
	"ticket_pattern": "",
	"require_approval": false,
	"approvers": [],
	"approvals_required": 1,
	"allow_permanent_eligibility": false,
	"max_eligibility": "8760h",
	"pending_timeout": "24h",
}

# METADATA
# description: The settings of a role (an entry of data.pim.roles), merged over default_settings.
settings(role) := object.union(default_settings, object.get(role, "settings", {}))

# METADATA
# description: |
#   Every role of data.pim.roles with its settings merged over
#   default_settings: what the Elevate service reads, so the defaults are
#   defined here only.
# entrypoint: true
effective_roles[id] := object.union(role, {"settings": settings(role)}) if some id, role in data.pim.roles

# METADATA
# description: The display name of a role, falling back to its id.
role_name(role_id) := object.get(data.pim.roles[role_id], "name", role_id)

# METADATA
# description: Authentication methods (RFC 8176 amr values) that count as a strong second factor.
strong_mfa_methods := {"mfa", "otp", "hwk", "swk", "sc", "fido", "totp"}

_scope_pattern := `^(/|(/[A-Za-z0-9][A-Za-z0-9._@:-]*)+)$`

# METADATA
# description: |
#   True iff s is a valid scope: "/" or one or more "/segment" parts, each
#   segment matching [A-Za-z0-9][A-Za-z0-9._@:-]* (no empty, "." or ".."
#   segments, no trailing slash).
default scope_valid(_) := false

scope_valid(s) if {
	is_string(s)
	regex.match(_scope_pattern, s)
}

# METADATA
# description: |
#   True iff a grant at scope granted covers scope requested: itself and
#   everything below it, nothing beside it. Invalid scopes are covered by
#   nothing and cover nothing.
default scope_covers(_, _) := false

scope_covers("/", requested) if scope_valid(requested)

scope_covers(granted, requested) if {
	granted == requested
	scope_valid(granted)
}

scope_covers(granted, requested) if {
	scope_valid(granted)
	scope_valid(requested)
	startswith(requested, concat("", [granted, "/"]))
}

# METADATA
# description: |
#   True iff elevation e is live at now: activated_at (missing means 0) <= now
#   and expires_at is null (permanent) or later than now. A missing or
#   non-numeric expires_at is not live.
default elevation_live(_, _) := false

elevation_live(e, now) if {
	_activated_by(e, now)
	e.expires_at == null
}

elevation_live(e, now) if {
	_activated_by(e, now)
	is_number(e.expires_at)
	e.expires_at > now
}

_activated_by(e, now) if {
	is_number(now)
	activated_at := object.get(e, "activated_at", 0)
	is_number(activated_at)
	activated_at <= now
}

# METADATA
# description: |
#   True iff assignment a's window contains time t: start is null or <= t,
#   and end is null or > t. start and end must be present (null or a number).
default window_contains(_, _) := false

window_contains(a, t) if {
	is_number(t)
	_starts_by(a.start, t)
	_ends_after(a.end, t)
}

_starts_by(start, _) if start == null

_starts_by(start, t) if {
	is_number(start)
	start <= t
}

_ends_after(end, _) if end == null

_ends_after(end, t) if {
	is_number(end)
	t < end
}

# METADATA
# description: |
#   True iff one of role's permission patterns glob-matches action, with "."
#   as the delimiter ("users.*" matches "users.create", not "users.a.b").
default role_permits(_, _) := false

role_permits(role, action) if {
	is_string(action)
	some pattern in role.permissions
	glob.match(pattern, ["."], action)
}

# METADATA
# description: True iff a and b are strings equal after lowercasing (principals).
default same_principal(_, _) := false

same_principal(a, b) if {
	is_string(a)
	is_string(b)
	lower(a) == lower(b)
}

# METADATA
# description: x with surrounding white space removed, or "" when x is not a string.
text(x) := trim_space(x) if is_string(x)

else := ""

# METADATA
# description: True iff the Go duration string d parses.
default duration_valid(_) := false

duration_valid(d) if is_number(time.parse_duration_ns(d))

# METADATA
# description: A Unix-nanosecond time formatted as RFC 3339 in UTC, for messages.
format_time(ns) := time.format([ns, "UTC", "2006-01-02T15:04:05.999999999Z07:00"])

# METADATA
# description: Any value rendered for a message (strings quoted), safe for untrusted input.
quote(x) := json.marshal(x)
