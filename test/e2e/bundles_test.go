package e2e

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/elevatepdp/elevate/test/elevatetest"
)

// The policy the bundles carry: who may, by data, so that an activation
// must replace rule and data together.
const appPolicy = `package app

default allow := false

allow if input.user in data.app.users
`

// The decision-log rules, in the policy as in OPA: mask the password,
// drop mallory's decisions (input is the decision-log event here).
const logPolicy = `package system.log

mask contains "/input/password"

drop if input.input.user == "mallory"
`

// signingKey is an RSA key bundles are signed with; keyID names it in
// Elevate's keys section.
type signingKey struct {
	priv   *rsa.PrivateKey
	keyID  string
	public string // PEM
}

func newSigningKey(t *testing.T, keyID string) signingKey {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return signingKey{priv: priv, keyID: keyID, public: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))}
}

func (k signingKey) privatePEM() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k.priv)}))
}

// buildBundle writes an OPA bundle tarball with OPA's bundle package:
// modules by path, data, the revision in the manifest, signed with key
// unless it is nil.
func buildBundle(t *testing.T, rev string, roots []string, modules map[string]string, data map[string]any, key *signingKey) []byte {
	t.Helper()
	b := bundle.Bundle{Manifest: bundle.Manifest{Revision: rev, Roots: &roots}, Data: data}
	for path, src := range modules {
		b.Modules = append(b.Modules, bundle.ModuleFile{URL: path, Path: path, Raw: []byte(src), Parsed: ast.MustParseModule(src)})
	}
	if key != nil {
		if err := b.GenerateSignature(bundle.NewSigningConfig(key.privatePEM(), "RS256", ""), key.keyID, false); err != nil {
			t.Fatalf("sign bundle %s: %v", rev, err)
		}
	}
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).Write(b); err != nil {
		t.Fatalf("write bundle %s: %v", rev, err)
	}
	return buf.Bytes()
}

func appBundle(t *testing.T, rev string, users []any, key *signingKey) []byte {
	t.Helper()
	return buildBundle(t, rev, []string{"app", "system/log"},
		map[string]string{"app/app.rego": appPolicy, "system/log.rego": logPolicy},
		map[string]any{"app": map[string]any{"users": users}}, key)
}

// bundleServer serves one bundle at /bundles/authz.tar.gz, as a bundle
// server does: with an ETag, and 304 Not Modified when the client already
// has it. Until a bundle is set it answers 404.
type bundleServer struct {
	*httptest.Server
	mu          sync.Mutex
	body        []byte
	etag        string
	served      map[string]int // full downloads by ETag
	notModified int
}

func newBundleServer(t *testing.T) *bundleServer {
	t.Helper()
	bs := &bundleServer{served: map[string]int{}}
	bs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/bundles/authz.tar.gz" {
			http.NotFound(w, r)
			return
		}
		bs.mu.Lock()
		defer bs.mu.Unlock()
		switch {
		case bs.body == nil:
			http.NotFound(w, r)
		case r.Header.Get("If-None-Match") == bs.etag:
			bs.notModified++
			w.WriteHeader(http.StatusNotModified)
		default:
			bs.served[bs.etag]++
			w.Header().Set("ETag", bs.etag)
			w.Header().Set("Content-Type", "application/gzip")
			_, _ = w.Write(bs.body)
		}
	}))
	t.Cleanup(bs.Close)
	return bs
}

// set serves b from now on and returns its ETag.
func (bs *bundleServer) set(b []byte) string {
	sum := sha256.Sum256(b)
	bs.mu.Lock()
	defer bs.mu.Unlock()
	bs.body, bs.etag = b, `"`+hex.EncodeToString(sum[:8])+`"`
	return bs.etag
}

func (bs *bundleServer) counts(etag string) (served, notModified int) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	return bs.served[etag], bs.notModified
}

// opaConfig is Elevate's configuration file holding OPA's sections, as
// JSON (which YAML reads as it is), with the decision endpoints opened
// (these tests are about bundles and decision logs, not client tokens).
func opaConfig(t *testing.T, sections map[string]any) string {
	t.Helper()
	doc := map[string]any{"decisions": map[string]any{"require_token": false}}
	for k, v := range sections {
		doc[k] = v
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fastPolling is bundles.*.polling for tests: a new revision within 2 s.
var fastPolling = map[string]any{"min_delay_seconds": 1, "max_delay_seconds": 2}

func eventually(t *testing.T, within time.Duration, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); !ok(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
	}
}

// ask is the Data API's answer for data.app.allow and its decision id.
func ask(t *testing.T, s *elevatetest.Server, input map[string]any) (any, string) {
	t.Helper()
	body := s.Do(t, "POST", "/v1/data/app/allow", "", map[string]any{"input": input}).Want(t, http.StatusOK)
	id, _ := body["decision_id"].(string)
	return body["result"], id
}

func allowed(t *testing.T, s *elevatetest.Server, user string) bool {
	t.Helper()
	v, _ := ask(t, s, map[string]any{"user": user})
	return v == true
}

// readiness is /health/ready's status, its bundles check and the revision
// it reports being served.
func readiness(t *testing.T, s *elevatetest.Server) (int, string, string) {
	t.Helper()
	r := s.Do(t, "GET", "/health/ready", "", nil)
	checks, _ := r.Body["checks"].(map[string]any)
	bundles, _ := checks["bundles"].(string)
	pol, _ := r.Body["policy"].(map[string]any)
	rev, _ := pol["revision"].(string)
	return r.Status, bundles, rev
}

// A signed bundle from a bundle server is the policy: readiness waits for
// its first activation, a new revision is picked up by polling, and a
// bundle that fails verification is refused while the last good one keeps
// serving.
func TestSignedBundlesFromABundleServer(t *testing.T) {
	key := newSigningKey(t, "release")
	impostor := newSigningKey(t, "release") // the same key id, another key
	srv := newBundleServer(t)
	s := elevatetest.Start(t, elevatetest.Options{Unready: true, Config: opaConfig(t, map[string]any{
		"services": map[string]any{"control": map[string]any{"url": srv.URL}},
		"keys":     map[string]any{"release": map[string]any{"key": key.public, "algorithm": "RS256"}},
		"bundles": map[string]any{"authz": map[string]any{
			"service": "control", "resource": "/bundles/authz.tar.gz",
			"signing": map[string]any{"keyid": "release"}, "polling": fastPolling,
		}},
		// OPA's bundle metrics, on Elevate's /metrics.
		"status": map[string]any{"prometheus": true},
	})})

	// No bundle yet: not ready, and the bundles check says why.
	status, check, _ := readiness(t, s)
	if status != http.StatusServiceUnavailable || !strings.Contains(check, "authz: not activated yet") {
		t.Fatalf("before any bundle: ready %d, bundles check %q", status, check)
	}
	if allowed(t, s, "alice") {
		t.Fatal("a decision allowed before any policy was activated")
	}

	v1 := srv.set(appBundle(t, "v1", []any{"alice"}, &key))
	eventually(t, 10*time.Second, "ready after the first bundle", func() bool {
		status, _, _ := readiness(t, s)
		return status == http.StatusOK
	})
	if _, check, rev := readiness(t, s); check != "ok" || rev != "v1" {
		t.Fatalf("after v1: bundles check %q, revision %q", check, rev)
	}
	if !allowed(t, s, "alice") || allowed(t, s, "bob") {
		t.Fatal("v1 does not decide as its policy and data say")
	}
	// Polling asks with the ETag and the server answers 304 Not Modified.
	eventually(t, 10*time.Second, "a conditional poll answered 304", func() bool {
		_, notModified := srv.counts(v1)
		return notModified > 0
	})

	srv.set(appBundle(t, "v2", []any{"bob"}, &key))
	eventually(t, 10*time.Second, "v2 activated by polling", func() bool {
		return allowed(t, s, "bob")
	})
	if _, _, rev := readiness(t, s); rev != "v2" || allowed(t, s, "alice") {
		t.Fatalf("after v2: revision %q, alice allowed %v", rev, allowed(t, s, "alice"))
	}

	refused := map[string][]byte{
		"signed with another key": appBundle(t, "v3", []any{"mallory"}, &impostor),
		"not signed":              appBundle(t, "v4", []any{"mallory"}, nil),
	}
	for name, b := range refused {
		etag := srv.set(b)
		// Downloaded twice: the first download's verification has failed
		// by the time the plugin retries.
		eventually(t, 15*time.Second, name+": bundle downloaded twice", func() bool {
			served, _ := srv.counts(etag)
			return served >= 2
		})
		status, check, rev := readiness(t, s)
		if status != http.StatusOK || check != "ok" || rev != "v2" {
			t.Fatalf("%s: ready %d, bundles check %q, revision %q; want 200, ok, v2", name, status, check, rev)
		}
		if allowed(t, s, "mallory") || !allowed(t, s, "bob") {
			t.Fatalf("%s: the refused bundle decides", name)
		}
	}
	if metric(t, s, "elevate_policy_info", "revision", "v2") != 1 {
		t.Error("elevate_policy_info does not give the active revision")
	}
	if metric(t, s, "bundle_loaded_counter", "name", "authz") < 2 || metric(t, s, "bundle_failed_load_counter", "name", "authz") < 1 {
		t.Error("OPA's status plugin does not count bundle loads and failures on /metrics")
	}
	if !strings.Contains(s.Log(), "signature") {
		t.Errorf("the log does not say a signature was refused:\n%s", s.Log())
	}
}

// collector is a decision-log service: POST /logs, a gzipped JSON array
// of events.
type collector struct {
	*httptest.Server
	mu     sync.Mutex
	events []map[string]any
}

func newCollector(t *testing.T) *collector {
	t.Helper()
	c := &collector{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/logs" {
			http.NotFound(w, r)
			return
		}
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		raw, err := io.ReadAll(zr)
		var events []map[string]any
		if err == nil {
			err = json.Unmarshal(raw, &events)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		c.events = append(c.events, events...)
		c.mu.Unlock()
	}))
	t.Cleanup(c.Close)
	return c
}

func (c *collector) event(id string) map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.events {
		if e["decision_id"] == id {
			return e
		}
	}
	return nil
}

// Every decision reaches a decision-log service through OPA's decision-log
// plugin, with the policy's mask and drop rules applied, wherever the
// rules are: in the bundle, in local files beside it, or in local files
// alone.
func TestDecisionLogsReachTheCollector(t *testing.T) {
	tests := map[string]struct {
		bundle map[string]string // modules of the bundle; nil for none
		roots  []string          // the bundle's
		local  map[string]string // files in a directory given as policy path
	}{
		"rules in the bundle": {
			bundle: map[string]string{"app/app.rego": appPolicy, "system/log.rego": logPolicy}, roots: []string{"app", "system/log"},
		},
		"rules in files beside bundle": {
			bundle: map[string]string{"app/app.rego": appPolicy}, roots: []string{"app"}, local: map[string]string{"log.rego": logPolicy},
		},
		"no bundle, local files": {local: map[string]string{"app.rego": appPolicy, "log.rego": logPolicy, "data.json": `{"app": {"users": ["alice"]}}`}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			logs := newCollector(t)
			sections := map[string]any{
				"services": map[string]any{"logs": map[string]any{"url": logs.URL}},
				"labels":   map[string]any{"replica": "e2e"},
				"decision_logs": map[string]any{
					"service":   "logs",
					"reporting": map[string]any{"min_delay_seconds": 1, "max_delay_seconds": 1},
				},
			}
			if tc.bundle != nil {
				srv := newBundleServer(t)
				srv.set(buildBundle(t, "v1", tc.roots, tc.bundle, map[string]any{"app": map[string]any{"users": []any{"alice"}}}, nil))
				sections["services"].(map[string]any)["control"] = map[string]any{"url": srv.URL}
				sections["bundles"] = map[string]any{"authz": map[string]any{
					"service": "control", "resource": "/bundles/authz.tar.gz", "polling": fastPolling,
				}}
			}
			var args []string
			if tc.local != nil {
				dir := t.TempDir()
				for file, content := range tc.local {
					if err := os.WriteFile(filepath.Join(dir, file), []byte(content), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				args = []string{dir}
			}
			s := elevatetest.Start(t, elevatetest.Options{Unready: true, Args: args, Config: opaConfig(t, sections)})
			eventually(t, 10*time.Second, "ready", func() bool {
				status, _, _ := readiness(t, s)
				return status == http.StatusOK
			})

			_, dropped := ask(t, s, map[string]any{"user": "mallory", "password": "m"})
			result, kept := ask(t, s, map[string]any{"user": "alice", "password": "hunter2"})
			if result != true {
				t.Fatalf("alice: %v", result)
			}
			var ev map[string]any
			eventually(t, 10*time.Second, "alice's decision uploaded", func() bool {
				ev = logs.event(kept)
				return ev != nil
			})
			input, _ := ev["input"].(map[string]any)
			if input["user"] != "alice" || ev["path"] != "app/allow" || ev["result"] != true || ev["timestamp"] == nil {
				t.Fatalf("event %v", ev)
			}
			if _, ok := input["password"]; ok {
				t.Fatalf("the password was not masked: %v", ev)
			}
			if erased, _ := ev["erased"].([]any); len(erased) != 1 || erased[0] != "/input/password" {
				t.Fatalf("erased %v", ev["erased"])
			}
			if _, ok := input["elevations"]; !ok {
				t.Errorf("the logged input is not the one the policy saw (no elevations): %v", input)
			}
			labels, _ := ev["labels"].(map[string]any)
			if labels["replica"] != "e2e" || labels["id"] == nil {
				t.Errorf("labels %v", labels)
			}
			if tc.bundle != nil {
				if rev, _ := ev["bundles"].(map[string]any)["authz"].(map[string]any)["revision"]; rev != "v1" {
					t.Errorf("bundles %v", ev["bundles"])
				}
			}
			// Mallory's decision was made first: had it been kept, it would
			// have been uploaded with or before alice's.
			if logs.event(dropped) != nil {
				t.Fatalf("a dropped decision was uploaded: %v", logs.event(dropped))
			}
		})
	}
}
