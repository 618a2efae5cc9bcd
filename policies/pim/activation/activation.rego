# METADATA
# description: |
#   Activation of a role by one of its eligible principals (just-in-time
#   elevation). Every `deny contains msg` rule of this package is a violation;
#   rules added in other files of the package (extensions) count too.
package pim.activation

import data.pim.lib

# METADATA
# description: |
#   The activation decision: allow is true iff there are no violations;
#   duration, start and expires_at describe the elevation to create.
# entrypoint: true
decision := {
	"allow": count(deny) == 0,
	"requires_approval": _requires_approval,
	"approvals_required": _approvals_required,
	"duration": _duration_out,
	"duration_ns": _duration_ns_out,
	"start": _start_out,
	"expires_at": _expires_at_out,
	"assignment": _assignment_out,
	"violations": deny,
}

# --- The request, with its defaults ------------------------------------------

_request := input.request if is_object(input.request)

else := {}

_role_id := object.get(_request, "role", null)

_role := data.pim.roles[_role_id]

_settings := lib.settings(_role)

_name := lib.role_name(_role_id)

_scope := object.get(_request, "scope", "/")

_principal := object.get(input, "principal", null)

_now := input.now if is_number(input.now)

# When the request was made: a scheduled activation is decided again at its
# start with the time it was requested, so that its start and its second
# factor are judged as at the request (the requester is not there to give a
# fresh one); absent, it is now.
_requested_at := _request.requested_at if is_number(_request.requested_at)

else := _now

_requested_start := object.get(_request, "start", null)

_start := _now if _requested_start == null

_start := _requested_start if is_number(_requested_start)

_requested_duration := object.get(_request, "duration", "")

_duration_given if not _requested_duration in {"", null}

_duration := _requested_duration if _duration_given

_duration := _settings.default_duration if not _duration_given

_duration_ns := time.parse_duration_ns(_duration)

_expires_at := _start + _duration_ns

_min_ns := time.parse_duration_ns(_settings.min_duration)

_max_ns := time.parse_duration_ns(_settings.max_duration)

_mfa_max_age_ns := time.parse_duration_ns(_settings.mfa_max_age)

_justification := lib.text(object.get(_request, "justification", ""))

_ticket := _request.ticket if is_object(_request.ticket)

else := {}

_ticket_system := lib.text(object.get(_ticket, "system", ""))

_ticket_number := lib.text(object.get(_ticket, "number", ""))

_mfa := input.mfa if is_object(input.mfa)

else := {}

_mfa_auth_time := object.get(_mfa, "auth_time", null)

_strong_mfa if {
	some method in _mfa.methods
	is_string(method)
	lower(method) in lib.strong_mfa_methods
}

default _requires_approval := false

_requires_approval := _settings.require_approval != false

default _approvals_required := 0

_approvals_required := _settings.approvals_required if _requires_approval

# --- The eligible assignment -------------------------------------------------

# Eligible assignments of the principal that cover the request at its start.
_candidates := [a |
	some a in input.assignments
	_eligible_for_request(a)
]

_eligible_for_request(a) if {
	a.type == "eligible"
	lib.same_principal(a.principal, _principal)
	a.role == _role_id
	lib.scope_covers(a.scope, _scope)
	lib.window_contains(a, _start)
}

# Prefer the first candidate that lasts the whole elevation.
_lasting := [a |
	some a in _candidates
	_lasts(a)
]

_lasts(a) if a.end == null

_lasts(a) if _expires_at <= a.end

_assignment := _lasting[0]

_assignment := _candidates[0] if count(_lasting) == 0

# --- Output fields that may be unknown (null) --------------------------------

default _duration_out := null

_duration_out := _duration

default _duration_ns_out := null

_duration_ns_out := _duration_ns

default _start_out := null

_start_out := _start

default _expires_at_out := null

_expires_at_out := _expires_at

default _assignment_out := null

_assignment_out := _assignment.id

# --- Violations ---------------------------------------------------------------

deny contains "the current time (input.now, Unix nanoseconds) is missing" if not _now

deny contains msg if {
	not _role
	msg := sprintf("unknown role %s", [lib.quote(_role_id)])
}

deny contains msg if {
	some key in ["min_duration", "default_duration", "max_duration", "mfa_max_age"]
	not lib.duration_valid(_settings[key])
	msg := sprintf("role %s is misconfigured: %s %s is not a duration", [_name, key, lib.quote(_settings[key])])
}

deny contains msg if {
	not lib.scope_valid(_scope)
	msg := sprintf(
		"invalid scope %s: use \"/\" or a path such as \"/administrativeUnits/new-york-office\"",
		[lib.quote(_scope)],
	)
}

deny contains msg if {
	_role
	lib.scope_valid(_scope)
	is_number(_start)
	not _assignment
	msg := sprintf("%v has no eligible assignment for %s at %s", [_principal, _name, _scope])
}

deny contains msg if {
	_duration_given
	not lib.duration_valid(_duration)
	msg := sprintf("duration %s is not a valid duration such as \"30m\" or \"2h\"", [lib.quote(_duration)])
}

deny contains msg if {
	_duration_ns < _min_ns
	msg := sprintf("duration %s is below the minimum of %s for %s", [_duration, _settings.min_duration, _name])
}

deny contains msg if {
	_duration_ns > _max_ns
	msg := sprintf("duration %s exceeds the maximum of %s for %s", [_duration, _settings.max_duration, _name])
}

deny contains msg if {
	_duration_ns <= 0
	_duration_ns >= _min_ns
	msg := sprintf("duration %s must be positive", [_duration])
}

deny contains msg if {
	is_number(_assignment.end)
	_expires_at > _assignment.end
	msg := sprintf(
		"the elevation would end at %s, after the eligible assignment %s ends at %s",
		[lib.format_time(_expires_at), _assignment.id, lib.format_time(_assignment.end)],
	)
}

deny contains msg if {
	not _requested_start == null
	not is_number(_requested_start)
	msg := sprintf("start %s is not a time in Unix nanoseconds", [lib.quote(_requested_start)])
}

deny contains msg if {
	_start < _requested_at
	msg := sprintf("the scheduled start %s is in the past", [lib.format_time(_start)])
}

deny contains msg if {
	_settings.require_justification != false
	_justification == ""
	msg := sprintf("a justification is required to activate %s", [_name])
}

deny contains msg if {
	_settings.require_justification != false
	_justification != ""
	count(_justification) < _settings.justification_min_length
	msg := sprintf(
		"the justification must be at least %d characters long for %s (got %d)",
		[_settings.justification_min_length, _name, count(_justification)],
	)
}

deny contains msg if {
	_settings.justification_pattern != ""
	_justification != ""
	not regex.match(_settings.justification_pattern, _justification)
	msg := sprintf("the justification does not match the pattern %q required for %s", [_settings.justification_pattern, _name])
}

deny contains msg if {
	_settings.require_ticket != false
	"" in {_ticket_system, _ticket_number}
	msg := sprintf("a ticket (system and number) is required to activate %s", [_name])
}

deny contains msg if {
	_settings.ticket_pattern != ""
	_ticket_number != ""
	not regex.match(_settings.ticket_pattern, _ticket_number)
	msg := sprintf("ticket number %q does not match the pattern %q required for %s", [_ticket_number, _settings.ticket_pattern, _name])
}

deny contains msg if {
	_settings.require_mfa != false
	not _strong_mfa
	msg := sprintf("multi-factor authentication is required to activate %s", [_name])
}

deny contains msg if {
	_settings.require_mfa != false
	_strong_mfa
	not is_number(_mfa_auth_time)
	msg := "the time of the multi-factor authentication (mfa.auth_time) is missing"
}

deny contains msg if {
	_settings.require_mfa != false
	_strong_mfa
	_requested_at - _mfa_auth_time > _mfa_max_age_ns
	msg := sprintf(
		"the multi-factor authentication is older than %s, the maximum for %s: authenticate again",
		[_settings.mfa_max_age, _name],
	)
}

deny contains msg if {
	some e in input.elevations
	e.role == _role_id
	e.scope == _scope
	lib.elevation_live(e, _now)
	msg := sprintf("%s is already active at %s", [_name, _scope])
}
