# METADATA
# description: |
#   Approval (or denial) of a pending activation request by an approver.
#   Every `deny contains msg` rule of this package is a violation; rules added
#   in other files of the package (extensions) count too.
package pim.approval

import data.pim.lib

# METADATA
# description: The approval decision; allow is true iff there are no violations.
# entrypoint: true
decision := {
	"allow": count(deny) == 0,
	"violations": deny,
}

_request := input.request if is_object(input.request)

else := {}

_requester := object.get(_request, "principal", null)

_approver := object.get(input, "approver", null)

_action := object.get(input, "action", null)

_role_id := object.get(_request, "role", null)

_role := data.pim.roles[_role_id]

_settings := lib.settings(_role)

_name := lib.role_name(_role_id)

_approvers := _settings.approvers if is_array(_settings.approvers)

else := []

_scope := object.get(_request, "scope", "/")

_now := input.now if is_number(input.now)

_deadline := object.get(_request, "expires_at", null)

# The approver is named in the role's approvers, as user:<principal> ...
_listed_approver if {
	some entry in _approvers
	startswith(entry, "user:")
	lib.same_principal(substring(entry, 5, -1), _approver)
}

# ... or as role:<role-id> with a live elevation of that role covering the request's scope.
_listed_approver if {
	some entry in _approvers
	startswith(entry, "role:")
	some e in input.elevations
	e.role == substring(entry, 5, -1)
	lib.elevation_live(e, _now)
	lib.scope_covers(e.scope, _scope)
}

# --- Violations ---------------------------------------------------------------

deny contains "the current time (input.now, Unix nanoseconds) is missing" if not _now

deny contains "the approver is missing" if lib.text(_approver) == ""

deny contains "the request's principal is missing" if lib.text(_requester) == ""

deny contains msg if {
	lib.same_principal(_approver, _requester)
	msg := sprintf("%s requested this elevation and cannot approve or deny it", [_approver])
}

deny contains msg if {
	not _role
	msg := sprintf("unknown role %s", [lib.quote(_role_id)])
}

deny contains msg if {
	count(_approvers) == 0
	msg := sprintf("%s has no approvers configured: nobody may approve its requests", [_name])
}

deny contains msg if {
	count(_approvers) > 0
	not _listed_approver
	msg := sprintf("%s is not an approver for %s at %s", [lib.quote(_approver), _name, _scope])
}

deny contains msg if {
	not _action in {"approve", "deny"}
	msg := sprintf("action %s is neither \"approve\" nor \"deny\"", [lib.quote(_action)])
}

deny contains "a justification is required to approve or deny a request" if {
	lib.text(object.get(input, "justification", "")) == ""
}

deny contains msg if {
	object.get(_request, "status", null) != "pending_approval"
	msg := sprintf(
		"request %s is not pending approval (status %s)",
		[lib.quote(object.get(_request, "id", null)), lib.quote(object.get(_request, "status", null))],
	)
}

deny contains "the request has no pending deadline (request.expires_at)" if not is_number(_deadline)

deny contains msg if {
	is_number(_deadline)
	_now >= _deadline
	msg := sprintf("the request expired at %s", [lib.format_time(_deadline)])
}

deny contains msg if {
	some approval in _request.approvals
	lib.same_principal(approval.approver, _approver)
	msg := sprintf("%s has already approved this request", [_approver])
}
