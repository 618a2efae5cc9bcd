# An extension of Elevate's activation policy: load it next to the built-in
# policies and its violation blocks activations like any built-in one.
package pim.activation

# Global/privileged role outside business hours: Privileged Role Administrator
# may only be activated 08:00-18:00 UTC, Monday to Friday.
deny contains msg if {
	input.request.role == "privileged-role-administrator"
	[hour, _, _] := time.clock([input.now, "UTC"])
	weekend := time.weekday([input.now, "UTC"]) in {"Saturday", "Sunday"}
	true in [weekend, hour < 8, hour >= 18]
	msg := "Privileged Role Administrator can only be activated 08:00-18:00 UTC, Monday to Friday"
}
