package pim.lib_test

import data.pim.fixtures_test as fx
import data.pim.lib

test_scope_valid[note] if {
	some note, tc in {
		"root": {"s": "/", "ok": true},
		"one segment": {"s": "/a", "ok": true},
		"administrative unit": {"s": "/administrativeUnits/new-york-office", "ok": true},
		"allowed punctuation": {"s": "/a/user@x.example:1_b-c", "ok": true},
		"no leading slash": {"s": "a", "ok": false},
		"trailing slash": {"s": "/a/", "ok": false},
		"double slash": {"s": "//", "ok": false},
		"empty segment": {"s": "/a//b", "ok": false},
		"dot-dot segment": {"s": "/a/../b", "ok": false},
		"dot segment": {"s": "/a/./b", "ok": false},
		"segment starting with dot": {"s": "/.hidden", "ok": false},
		"space": {"s": "/a b", "ok": false},
		"empty string": {"s": "", "ok": false},
		"not a string": {"s": 1, "ok": false},
		"null": {"s": null, "ok": false},
	}
	lib.scope_valid(tc.s) == tc.ok
}

test_scope_covers[note] if {
	some note, tc in {
		"itself": {"granted": "/a", "requested": "/a", "ok": true},
		"child": {"granted": "/a", "requested": "/a/b", "ok": true},
		"grandchild": {"granted": "/a", "requested": "/a/b/c", "ok": true},
		"sibling with common prefix": {"granted": "/a", "requested": "/ab", "ok": false},
		"root covers root": {"granted": "/", "requested": "/", "ok": true},
		"root covers everything": {"granted": "/", "requested": "/administrativeUnits/new-york-office", "ok": true},
		"child does not cover parent": {"granted": "/a/b", "requested": "/a", "ok": false},
		"unit does not cover root": {"granted": "/a", "requested": "/", "ok": false},
		"invalid requested under root": {"granted": "/", "requested": "a", "ok": false},
		"invalid requested trailing slash": {"granted": "/a", "requested": "/a/", "ok": false},
		"invalid requested double slash": {"granted": "/", "requested": "//", "ok": false},
		"invalid requested dot-dot escape": {"granted": "/a", "requested": "/a/../b", "ok": false},
		"invalid granted equal": {"granted": "a", "requested": "a", "ok": false},
		"invalid granted trailing slash": {"granted": "/a/", "requested": "/a/b", "ok": false},
		"not strings": {"granted": null, "requested": null, "ok": false},
	}
	lib.scope_covers(tc.granted, tc.requested) == tc.ok
}

test_elevation_live[note] if {
	some note, tc in {
		"live": {"e": {"activated_at": fx.now - 1, "expires_at": fx.now + 1}, "ok": true},
		"activated exactly now": {"e": {"activated_at": fx.now, "expires_at": fx.now + 1}, "ok": true},
		"expires exactly now": {"e": {"activated_at": 0, "expires_at": fx.now}, "ok": false},
		"expired": {"e": {"activated_at": 0, "expires_at": fx.now - 1}, "ok": false},
		"not yet activated": {"e": {"activated_at": fx.now + 1, "expires_at": fx.now + 2}, "ok": false},
		"permanent": {"e": {"activated_at": 0, "expires_at": null}, "ok": true},
		"activated_at missing": {"e": {"expires_at": null}, "ok": true},
		"expires_at missing fails closed": {"e": {"activated_at": 0}, "ok": false},
		"expires_at not a number": {"e": {"activated_at": 0, "expires_at": "never"}, "ok": false},
		"activated_at not a number": {"e": {"activated_at": "then", "expires_at": null}, "ok": false},
		"not an object": {"e": "el-1", "ok": false},
	}
	lib.elevation_live(tc.e, fx.now) == tc.ok
}

test_elevation_live_needs_now if {
	not lib.elevation_live({"activated_at": 0, "expires_at": null}, null)
}

test_window_contains[note] if {
	some note, tc in {
		"unbounded": {"a": {"start": null, "end": null}, "ok": true},
		"at start": {"a": {"start": fx.now, "end": null}, "ok": true},
		"before start": {"a": {"start": fx.now + 1, "end": null}, "ok": false},
		"just before end": {"a": {"start": null, "end": fx.now + 1}, "ok": true},
		"at end": {"a": {"start": null, "end": fx.now}, "ok": false},
		"inside bounded window": {"a": {"start": fx.now - fx.hour, "end": fx.now + fx.hour}, "ok": true},
		"start missing fails closed": {"a": {"end": null}, "ok": false},
		"end missing fails closed": {"a": {"start": null}, "ok": false},
		"end not a number": {"a": {"start": null, "end": "later"}, "ok": false},
	}
	lib.window_contains(tc.a, fx.now) == tc.ok
}

test_role_permits[note] if {
	some note, tc in {
		"wildcard": {"action": "users.create", "ok": true},
		"wildcard needs a segment": {"action": "users", "ok": false},
		"wildcard stays in one segment": {"action": "users.a.b", "ok": false},
		"exact": {"action": "groups.read", "ok": true},
		"other action": {"action": "groups.write", "ok": false},
		"prefix only": {"action": "users2.create", "ok": false},
		"not a string": {"action": null, "ok": false},
	}
	role := fx.roles["user-administrator"]
	lib.role_permits(role, tc.action) == tc.ok
}

test_role_permits_without_permissions if {
	not lib.role_permits({"name": "x"}, "users.read")
}

test_same_principal[note] if {
	some note, tc in {
		"equal": {"a": fx.sophia, "b": fx.sophia, "ok": true},
		"case-insensitive": {"a": "Sophia.Davis@Perparims.Example", "b": fx.sophia, "ok": true},
		"different": {"a": fx.emma, "b": fx.sophia, "ok": false},
		"missing": {"a": null, "b": null, "ok": false},
	}
	lib.same_principal(tc.a, tc.b) == tc.ok
}

test_text[note] if {
	some note, tc in {
		"trimmed": {"x": "  hello \n", "want": "hello"},
		"blank": {"x": " \t ", "want": ""},
		"not a string": {"x": 42, "want": ""},
	}
	lib.text(tc.x) == tc.want
}

test_settings_merge_defaults if {
	s := lib.settings({"settings": {"max_duration": "2h", "require_mfa": false}})
	s.max_duration == "2h"
	s.require_mfa == false
	s.min_duration == lib.default_settings.min_duration
	s.approvals_required == 1
	lib.settings({}) == lib.default_settings
}

test_effective_roles if {
	roles := {
		"short": {"name": "Short", "permissions": ["a.*"], "settings": {"max_duration": "2h"}},
		"bare": {"name": "Bare"},
	}
	r := lib.effective_roles with data.pim.roles as roles
	r.short.name == "Short"
	r.short.permissions == ["a.*"]
	r.short.settings.max_duration == "2h"
	r.short.settings.pending_timeout == lib.default_settings.pending_timeout
	r.bare.settings == lib.default_settings
}

test_role_name if {
	lib.role_name("user-administrator") == "User Administrator" with data.pim.roles as fx.roles
	lib.role_name("nameless") == "nameless" with data.pim.roles as {"nameless": {"settings": {}}}
}

test_duration_valid[note] if {
	some note, tc in {
		"hours": {"d": "8h", "ok": true},
		"compound": {"d": "8h0m0.000000001s", "ok": true},
		"zero": {"d": "0s", "ok": true},
		"words": {"d": "eight hours", "ok": false},
		"empty": {"d": "", "ok": false},
		"number": {"d": 8, "ok": false},
	}
	lib.duration_valid(tc.d) == tc.ok
}

test_format_time if {
	lib.format_time(fx.now) == "2025-01-15T10:00:00Z"
	lib.format_time(fx.now + 1) == "2025-01-15T10:00:00.000000001Z"
}

test_quote if {
	lib.quote("a") == `"a"`
	lib.quote(null) == "null"
}
