package identity

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

// enrolled enrolls principal through tt and returns its secret.
func enrolled(t *testing.T, tt *TOTP, principal string) string {
	t.Helper()
	enr, err := tt.Enroll(context.Background(), principal)
	if err != nil {
		t.Fatal(err)
	}
	return enr.Secret
}

// codeAt is what an authenticator app shows at t.
func codeAt(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCode(secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTOTPVerify(t *testing.T) {
	const principal = "sophia.davis@perparims.example"
	// Mid-step, so that ±n steps are unambiguous.
	now := time.Unix(1_760_000_015, 0)
	step := 30 * time.Second

	tests := map[string]struct {
		principal string
		code      func(secret string) string
		want      error
	}{
		"current step":           {code: func(s string) string { return codeAt(t, s, now) }},
		"one step behind":        {code: func(s string) string { return codeAt(t, s, now.Add(-step)) }},
		"one step ahead":         {code: func(s string) string { return codeAt(t, s, now.Add(step)) }},
		"two steps behind":       {code: func(s string) string { return codeAt(t, s, now.Add(-2*step)) }, want: ErrBadCode},
		"two steps ahead":        {code: func(s string) string { return codeAt(t, s, now.Add(2*step)) }, want: ErrBadCode},
		"wrong code":             {code: func(s string) string { return wrong(codeAt(t, s, now)) }, want: ErrBadCode},
		"five digits":            {code: func(s string) string { return codeAt(t, s, now)[:5] }, want: ErrBadCode},
		"seven digits":           {code: func(s string) string { return codeAt(t, s, now) + "0" }, want: ErrBadCode},
		"letters":                {code: func(string) string { return "12345a" }, want: ErrBadCode},
		"empty":                  {code: func(string) string { return "" }, want: ErrBadCode},
		"not enrolled":           {principal: "nobody@perparims.example", code: func(string) string { return "123456" }, want: ErrNotEnrolled},
		"someone else's code":    {principal: "other@perparims.example", code: func(s string) string { return codeAt(t, s, now) }, want: ErrBadCode},
		"code with a space":      {code: func(s string) string { return " " + codeAt(t, s, now)[1:] }, want: ErrBadCode},
		"unicode digits refused": {code: func(string) string { return "١٢٣٤٥٦" }, want: ErrBadCode},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			secrets := newMemSecrets()
			secrets.now = func() time.Time { return now }
			tt := NewTOTP(secrets, TOTPConfig{})
			secret := enrolled(t, tt, principal)
			enrolled(t, tt, "other@perparims.example")
			p := principal
			if tc.principal != "" {
				p = tc.principal
			}
			err := tt.Verify(context.Background(), p, tc.code(secret), now)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Errorf("error %q contains the secret", err)
			}
		})
	}
}

// wrong returns a different 6-digit code.
func wrong(code string) string {
	b := []byte(code)
	b[0] = '0' + (b[0]-'0'+1)%10
	return string(b)
}

func TestTOTPReplay(t *testing.T) {
	const principal = "sophia.davis@perparims.example"
	now := time.Unix(1_760_000_015, 0)
	secrets := newMemSecrets()
	secrets.now = func() time.Time { return now }
	tt := NewTOTP(secrets, TOTPConfig{})
	secret := enrolled(t, tt, principal)
	code := codeAt(t, secret, now)

	if err := tt.Verify(context.Background(), principal, code, now); err != nil {
		t.Fatal(err)
	}
	// The same code again, in the same step and in the next (where it is
	// still inside the skew window), is a replay.
	for _, at := range []time.Time{now, now.Add(30 * time.Second)} {
		if err := tt.Verify(context.Background(), principal, code, at); !errors.Is(err, ErrReplay) {
			t.Fatalf("second use at %s: %v, want ErrReplay", at, err)
		}
	}
	// The next step's code is a different counter and is accepted once.
	next := codeAt(t, secret, now.Add(30*time.Second))
	if err := tt.Verify(context.Background(), principal, next, now.Add(30*time.Second)); err != nil {
		t.Fatal(err)
	}
}

func TestTOTPConcurrentUseOnce(t *testing.T) {
	// Replicas sharing the store race on the same code: exactly one wins.
	const principal = "sophia.davis@perparims.example"
	now := time.Unix(1_760_000_015, 0)
	secrets := newMemSecrets()
	secrets.now = func() time.Time { return now }
	replicas := []*TOTP{NewTOTP(secrets, TOTPConfig{}), NewTOTP(secrets, TOTPConfig{})}
	code := codeAt(t, enrolled(t, replicas[0], principal), now)

	var wg sync.WaitGroup
	errs := make([]error, 16)
	for i := range errs {
		wg.Go(func() { errs[i] = replicas[i%2].Verify(context.Background(), principal, code, now) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrReplay):
			t.Errorf("unexpected error %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d verifications succeeded, want exactly 1", ok)
	}
}

// inFlight holds every TOTPAttempt until n callers have made theirs, so
// that n verifications are counted before any of them is checked.
type inFlight struct {
	*memSecrets
	arrived sync.WaitGroup
}

func (f *inFlight) TOTPAttempt(ctx context.Context, principal string, window time.Duration) (int, error) {
	n, err := f.memSecrets.TOTPAttempt(ctx, principal, window)
	f.arrived.Done()
	f.arrived.Wait()
	return n, err
}

// A burst of requests carrying the right code, more of them at once than
// the lockout allows, is refused beyond the first (replays, or busy while
// too many are in flight) but never as a lockout, and leaves no count
// behind: no wrong code was given, so the principal is not locked out
// afterwards.
func TestTOTPBurstOfRightCodeIsNotLockout(t *testing.T) {
	const principal = "sophia.davis@perparims.example"
	const burst = 2 * maxTOTPFailures
	now := time.Unix(1_760_000_015, 0)
	secrets := &inFlight{memSecrets: newMemSecrets()}
	secrets.now = func() time.Time { return now }
	tt := NewTOTP(secrets, TOTPConfig{})
	secret := enrolled(t, tt, principal)
	code := codeAt(t, secret, now)
	secrets.arrived.Add(burst)
	errs := make([]error, burst)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() { errs[i] = tt.Verify(context.Background(), principal, code, now) })
	}
	wg.Wait()
	counts := map[string]int{}
	for _, err := range errs {
		switch {
		case err == nil:
			counts["ok"]++
		case errors.Is(err, ErrReplay):
			counts["replay"]++
		case errors.Is(err, ErrBusy):
			counts["busy"]++
		case errors.Is(err, ErrLocked):
			counts["locked"]++
		default:
			t.Fatalf("unexpected error %v", err)
		}
	}
	if counts["ok"] != 1 || counts["busy"] != burst-maxTOTPFailures || counts["locked"] != 0 {
		t.Fatalf("answers %v; want one accepted, %d busy of %d in flight, none locked", counts, burst-maxTOTPFailures, burst)
	}

	secrets.arrived.Add(1)
	next := now.Add(30 * time.Second)
	if err := tt.Verify(context.Background(), principal, codeAt(t, secret, next), next); err != nil {
		t.Fatalf("the next right code after the burst: %v", err)
	}
}

// A right code checked for a request that is then refused for another
// reason is not used up: it works for the next request (item 4 of issue
// 11). Use uses it up, once.
func TestTOTPCheckDoesNotUseTheCode(t *testing.T) {
	const principal = "sophia.davis@perparims.example"
	now := time.Unix(1_760_000_015, 0)
	secrets := newMemSecrets()
	secrets.now = func() time.Time { return now }
	tt := NewTOTP(secrets, TOTPConfig{})
	secret := enrolled(t, tt, principal)
	code := codeAt(t, secret, now)
	for i := range 2 * maxTOTPFailures {
		if _, err := tt.Check(context.Background(), principal, code, now); err != nil {
			t.Fatalf("check %d of a right code: %v", i, err)
		}
	}
	a, err := tt.Check(context.Background(), principal, code, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := tt.Use(context.Background(), a); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if err := tt.Use(context.Background(), a); !errors.Is(err, ErrReplay) {
		t.Fatalf("second use: %v, want ErrReplay", err)
	}
	if err := tt.Use(context.Background(), Accepted{}); err == nil {
		t.Fatal("used a code that was never accepted")
	}
}

// A lockout says how many wrong codes caused it and until when.
func TestTOTPLockedSaysUntil(t *testing.T) {
	now := time.Unix(1_760_000_015, 0)
	secrets := newMemSecrets()
	secrets.now = func() time.Time { return now }
	tt := NewTOTP(secrets, TOTPConfig{})
	secret := enrolled(t, tt, "a")
	wrong := "000000"
	if codeAt(t, secret, now) == wrong {
		wrong = "111111"
	}
	for range maxTOTPFailures {
		_ = tt.Verify(context.Background(), "a", wrong, now)
	}
	_, err := tt.Check(context.Background(), "a", codeAt(t, secret, now), now)
	var locked *LockedError
	if !errors.As(err, &locked) || !errors.Is(err, ErrLocked) {
		t.Fatalf("error %v, want a *LockedError", err)
	}
	if locked.Failures != maxTOTPFailures || !locked.Until.Equal(now.Add(totpLockout)) {
		t.Fatalf("locked %+v, want %d failures until %v", locked, maxTOTPFailures, now.Add(totpLockout))
	}
}

func TestTOTPEnroll(t *testing.T) {
	const principal = "sophia.davis@perparims.example"
	now := time.Now()
	secrets := newMemSecrets()
	tt := NewTOTP(secrets, TOTPConfig{Issuer: "Perparims"})

	first, err := tt.Enroll(context.Background(), principal)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(first.URL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Scheme != "otpauth" || u.Host != "totp" || u.Path != "/Perparims:"+principal ||
		q.Get("secret") != first.Secret || q.Get("issuer") != "Perparims" || q.Get("digits") != "6" || q.Get("period") != "30" || q.Get("algorithm") != "SHA1" {
		t.Errorf("enrollment URL %s", first.URL)
	}
	if stored, _ := secrets.TOTPSecret(context.Background(), principal); stored != first.Secret {
		t.Error("secret not stored")
	}

	// Re-enrolling replaces the secret: the old app stops working.
	second, err := tt.Enroll(context.Background(), principal)
	if err != nil {
		t.Fatal(err)
	}
	if second.Secret == first.Secret {
		t.Fatal("re-enrolment kept the secret")
	}
	if codeAt(t, first.Secret, now) != codeAt(t, second.Secret, now) { // 1 in a million they agree
		if err := tt.Verify(context.Background(), principal, codeAt(t, first.Secret, now), now); !errors.Is(err, ErrBadCode) {
			t.Errorf("old secret's code: %v, want ErrBadCode", err)
		}
	}
	if err := tt.Verify(context.Background(), principal, codeAt(t, second.Secret, now), now); err != nil {
		t.Errorf("new secret's code: %v", err)
	}

	for p, want := range map[string]bool{principal: true, "nobody@perparims.example": false} {
		if got, err := tt.Enrolled(context.Background(), p); got != want || err != nil {
			t.Errorf("Enrolled(%s) = %v, %v; want %v", p, got, err, want)
		}
	}
	if got := NewTOTP(secrets, TOTPConfig{}).issuer; got != "Elevate" {
		t.Errorf("default issuer %q", got)
	}
	if _, err := tt.Enroll(context.Background(), ""); err == nil {
		t.Error("enrolled an empty principal")
	}
}

// failingSecrets fails every call, as a store that is down would.
type failingSecrets struct{ secret string }

var errStoreDown = errors.New("store down")

func (f failingSecrets) PutTOTPSecret(context.Context, string, string) error { return errStoreDown }
func (f failingSecrets) TOTPSecret(context.Context, string) (string, error) {
	if f.secret != "" {
		return f.secret, nil
	}
	return "", errStoreDown
}
func (f failingSecrets) MarkTOTPUsed(context.Context, string, uint64, time.Duration) (bool, error) {
	return false, errStoreDown
}

func (f failingSecrets) TOTPAttempt(context.Context, string, time.Duration) (int, error) {
	return 0, errStoreDown
}
func (f failingSecrets) TOTPAttemptOK(context.Context, string) error { return errStoreDown }
func (f failingSecrets) DeleteTOTPSecret(context.Context, string) (bool, error) {
	return false, errStoreDown
}
func (f failingSecrets) PutTOTPInvite(context.Context, string, string, time.Duration) error {
	return errStoreDown
}
func (f failingSecrets) ConsumeTOTPInvite(context.Context, string, string) (bool, error) {
	return false, errStoreDown
}
func (f failingSecrets) TOTPFailure(context.Context, string, time.Duration) (int, time.Time, error) {
	return 0, time.Time{}, errStoreDown
}
func (f failingSecrets) TOTPFailures(context.Context, string) (int, time.Time, error) {
	if f.secret != "" {
		return 0, time.Time{}, nil
	}
	return 0, time.Time{}, errStoreDown
}

// Wrong codes lock the principal's TOTP for a while: guessing 333,000 codes
// is not an option.
func TestTOTPLockout(t *testing.T) {
	secrets := newMemSecrets()
	now := time.Unix(1_760_000_015, 0)
	secrets.now = func() time.Time { return now }
	tt := NewTOTP(secrets, TOTPConfig{})
	secret := enrolled(t, tt, "a")
	wrong := "000000"
	if codeAt(t, secret, now) == wrong {
		wrong = "111111"
	}
	for i := range maxTOTPFailures {
		if err := tt.Verify(context.Background(), "a", wrong, now); !errors.Is(err, ErrBadCode) {
			t.Fatalf("wrong code %d: %v", i, err)
		}
	}
	if err := tt.Verify(context.Background(), "a", codeAt(t, secret, now), now); !errors.Is(err, ErrLocked) {
		t.Fatalf("right code while locked: %v", err)
	}
	if err := tt.Verify(context.Background(), "b", "123456", now); errors.Is(err, ErrLocked) {
		t.Fatal("another principal is locked too")
	}
	// Many guesses at once: only the first few are checked.
	enrolled(t, tt, "c")
	var wg sync.WaitGroup
	var checked atomic.Int32
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Only a wrong code was looked at; the rest were locked
			// or busy.
			if err := tt.Verify(context.Background(), "c", "000000", now); errors.Is(err, ErrBadCode) {
				checked.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := checked.Load(); n > maxTOTPFailures {
		t.Fatalf("%d concurrent guesses were checked, want at most %d", n, maxTOTPFailures)
	}
	now = now.Add(totpLockout)
	if err := tt.Verify(context.Background(), "a", codeAt(t, secret, now), now); err != nil {
		t.Fatalf("right code after the lockout: %v", err)
	}
}

func TestTOTPStoreErrors(t *testing.T) {
	const secret = "JBSWY3DPEHPK3PXP"
	now := time.Unix(1_760_000_015, 0)
	tests := map[string]struct {
		run  func(tt *TOTP) error
		s    Secrets
		want error
	}{
		"enroll, store down": {s: failingSecrets{}, want: errStoreDown, run: func(tt *TOTP) error {
			_, err := tt.Enroll(context.Background(), "a")
			return err
		}},
		"enrolled, store down": {s: failingSecrets{}, want: errStoreDown, run: func(tt *TOTP) error {
			_, err := tt.Enrolled(context.Background(), "a")
			return err
		}},
		"verify, cannot read secret": {s: failingSecrets{}, want: errStoreDown, run: func(tt *TOTP) error {
			return tt.Verify(context.Background(), "a", "123456", now)
		}},
		"verify, cannot record use": {s: failingSecrets{secret: secret}, want: errStoreDown, run: func(tt *TOTP) error {
			return tt.Verify(context.Background(), "a", codeAt(t, secret, now), now)
		}},
		"verify, corrupt secret": {s: failingSecrets{secret: "not base32 !"}, run: func(tt *TOTP) error {
			return tt.Verify(context.Background(), "a", "123456", now)
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := tc.run(NewTOTP(tc.s, TOTPConfig{}))
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if errors.Is(err, ErrBadCode) || errors.Is(err, ErrReplay) {
				t.Errorf("a store failure reads as a user error: %v", err)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "not base32") {
				t.Errorf("error %q contains the secret", err)
			}
		})
	}
}

// An invite is good once, for its principal, until it expires; a newer one
// replaces it; only its hash is stored.
func TestTOTPInvite(t *testing.T) {
	now := time.Unix(1_760_000_015, 0)
	secrets := newMemSecrets()
	secrets.now = func() time.Time { return now }
	tt := NewTOTP(secrets, TOTPConfig{})
	ctx := context.Background()
	inv, err := tt.Invite(ctx, "nina@x", now)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(inv.Code, invitePrefix) || len(inv.Code) < len(invitePrefix)+22 || !inv.ExpiresAt.Equal(now.Add(DefaultInviteTTL)) {
		t.Fatalf("invite %+v", inv)
	}
	if stored := secrets.invites["nina@x"].sum; stored != HashToken(inv.Code) {
		t.Fatalf("stored %q, want the code's hash", stored)
	}
	for name, tc := range map[string]struct{ principal, code string }{
		"another principal": {"alex@x", inv.Code},
		"wrong code":        {"nina@x", invitePrefix + "AAAAAAAAAAAAAAAAAAAAAA"},
		"no prefix":         {"nina@x", strings.TrimPrefix(inv.Code, invitePrefix)},
		"empty":             {"nina@x", ""},
	} {
		if ok, err := tt.Redeem(ctx, tc.principal, tc.code); ok || err != nil {
			t.Errorf("%s: redeemed=%v, %v", name, ok, err)
		}
	}
	if ok, err := tt.Redeem(ctx, "nina@x", inv.Code); !ok || err != nil {
		t.Fatalf("redeem: %v, %v", ok, err)
	}
	if ok, _ := tt.Redeem(ctx, "nina@x", inv.Code); ok {
		t.Fatal("an invite was redeemed twice")
	}

	old, _ := tt.Invite(ctx, "nina@x", now)
	newer, _ := tt.Invite(ctx, "nina@x", now)
	if ok, _ := tt.Redeem(ctx, "nina@x", old.Code); ok {
		t.Fatal("a replaced invite was redeemed")
	}
	now = now.Add(DefaultInviteTTL)
	if ok, _ := tt.Redeem(ctx, "nina@x", newer.Code); ok {
		t.Fatal("an expired invite was redeemed")
	}
	if _, err := tt.Invite(ctx, "", now); err == nil {
		t.Fatal("invited an empty principal")
	}
	if got := NewTOTP(secrets, TOTPConfig{InviteTTL: Duration(time.Minute)}).InviteTTL(); got != time.Minute {
		t.Fatalf("configured TTL %v", got)
	}
}

func TestTOTPReset(t *testing.T) {
	tt := NewTOTP(newMemSecrets(), TOTPConfig{})
	ctx := context.Background()
	enrolled(t, tt, "a")
	if removed, err := tt.Reset(ctx, "a"); !removed || err != nil {
		t.Fatalf("reset: %v, %v", removed, err)
	}
	if ok, _ := tt.Enrolled(ctx, "a"); ok {
		t.Fatal("still enrolled after reset")
	}
	if removed, err := tt.Reset(ctx, "a"); removed || err != nil {
		t.Fatalf("second reset: %v, %v", removed, err)
	}
	if _, err := NewTOTP(failingSecrets{}, TOTPConfig{}).Reset(ctx, "a"); !errors.Is(err, errStoreDown) {
		t.Fatalf("reset, store down: %v", err)
	}
}

// Only a JWT saying the user just signed in with a second factor enrols
// without an invite.
func TestTOTPEnrolsWithoutInvite(t *testing.T) {
	now := time.Unix(1_760_000_015, 0)
	fresh := Identity{Principal: "a", Kind: User, Method: MethodJWT, MFA: MFA{Methods: []string{"pwd", "hwk"}, AuthTime: now.Add(-time.Minute)}}
	with := func(f func(*Identity)) Identity {
		id := fresh
		f(&id)
		return id
	}
	tests := map[string]struct {
		id   Identity
		cfg  TOTPConfig
		want bool
	}{
		"fresh hardware key": {id: fresh, want: true},
		"OTP upper case":     {id: with(func(id *Identity) { id.MFA.Methods = []string{"OTP"} }), want: true},
		"password only":      {id: with(func(id *Identity) { id.MFA.Methods = []string{"pwd"} })},
		"no amr":             {id: with(func(id *Identity) { id.MFA.Methods = nil })},
		"no auth_time":       {id: with(func(id *Identity) { id.MFA.AuthTime = time.Time{} })},
		"too old":            {id: with(func(id *Identity) { id.MFA.AuthTime = now.Add(-DefaultIdPMFAMaxAge - time.Second) })},
		"longer max age":     {id: with(func(id *Identity) { id.MFA.AuthTime = now.Add(-30 * time.Minute) }), cfg: TOTPConfig{IdPMFAMaxAge: Duration(time.Hour)}, want: true},
		"invite required":    {id: fresh, cfg: TOTPConfig{RequireInvite: true}},
		"static token":       {id: with(func(id *Identity) { id.Method = MethodStatic })},
		"decision client":    {id: with(func(id *Identity) { id.Kind = Client })},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := NewTOTP(newMemSecrets(), tc.cfg).EnrolsWithoutInvite(tc.id, now); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}
