package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"--data-dir", dir, "regions"}, exitNoDaemon, "cannot reach meshd"},
		{[]string{"--lang", "de", "--data-dir", dir, "regions"}, exitNoDaemon, "meshd ist nicht erreichbar"},
		{[]string{"bogus"}, exitUsage, "unknown command"},
		{[]string{"therapist"}, exitUsage, "needs a subcommand"},
		{[]string{"--lang=de", "patient"}, exitUsage, "braucht einen Unterbefehl"},
		{[]string{"--data-dir", dir, "patient", "search"}, exitUsage, `"plz" not set`},
		{[]string{"--data-dir", dir, "patient", "search", "--plz", "10", "--ab", "morgen"}, exitUsage, "--ab"},
		{[]string{"--data-dir", dir, "patient", "reserve"}, exitUsage, "accepts 1 arg"},
		{[]string{"--data-dir", dir, "therapist", "publish", "--terminart", "SPRECHSTUNDE", "--start", "bald"}, exitUsage, "--start"},
		{[]string{"--data-dir", dir, "therapist", "withdraw"}, exitUsage, "give slot IDs or --all"},
		{[]string{"--data-dir", dir, "therapist", "withdraw", "x"}, exitUsage, "not a slot ID"},
		{[]string{"--data-dir", dir, "therapist", "credential", "import", "fapp-revocation:AQ"}, exitUsage, "fapp-credential:"},
		{[]string{"--data-dir", dir, "revocation", "nonsense"}, exitUsage, "fapp-revocation:"},
		{[]string{"--data-dir", dir, "follow"}, exitUsage, "requires at least 1 arg"},
		{[]string{"--data-dir", dir, "therapist", "slots"}, exitNoDaemon, "cannot reach meshd"},
		{[]string{"issuer", "--dir", dir + "/none", "list"}, exitError, "no issuer key"},
		{[]string{"issuer", "--dir", dir, "revoke", "x"}, exitUsage, "not a serial number"},
		{[]string{"issuer", "--dir", dir, "issue", "--beruf", "X", "--registry-id", "1", "--valid-to", "2030-01-01", "--identity", "nope"}, exitUsage, "--identity"},
		{[]string{"--frobnicate"}, exitUsage, "unknown flag"},
		{[]string{"help"}, exitOK, ""},
	} {
		var out, errb bytes.Buffer
		code := Main(tc.args, strings.NewReader(""), &out, &errb)
		if code != tc.code {
			t.Errorf("fapp %v: exit %d, want %d (stderr %q)", tc.args, code, tc.code, errb.String())
		}
		if !strings.Contains(errb.String(), tc.err) {
			t.Errorf("fapp %v: stderr %q does not mention %q", tc.args, errb.String(), tc.err)
		}
	}
}

func TestLanguage(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, nil, "en"},
		{nil, map[string]string{"LANG": "de_DE.UTF-8"}, "de"},
		{nil, map[string]string{"LANG": "de_DE.UTF-8", "LC_ALL": "C"}, "en"},
		{nil, map[string]string{"LC_MESSAGES": "de_AT", "LANG": "en_US"}, "de"},
		{[]string{"--lang", "en"}, map[string]string{"LANG": "de_DE"}, "en"},
		{[]string{"x", "--lang=DE"}, nil, "de"},
		{[]string{"--", "--lang=de"}, nil, "en"},
	} {
		if got := language(tc.args, env(tc.env)); got != tc.want {
			t.Errorf("language(%v, %v) = %s, want %s", tc.args, tc.env, got, tc.want)
		}
	}
}

func TestWhen(t *testing.T) {
	o := &options{lang: "de"}
	// Winter and summer time: the CLI shows Berlin's wall clock.
	for in, want := range map[string]string{
		"2027-01-12T17:00:00Z":      "Di 12.01.2027 18:00",
		"2027-07-13T16:00:00Z":      "Di 13.07.2027 18:00",
		"2027-03-28T00:59:00Z":      "So 28.03.2027 01:59",
		"2027-03-28T01:00:00Z":      "So 28.03.2027 03:00",
		"2027-01-12T18:00:00+01:00": "Di 12.01.2027 18:00",
	} {
		tm, err := parseWhen(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := o.when(tm); got != want {
			t.Errorf("when(%s) = %q, want %q", in, got, want)
		}
	}
	// A time typed without a zone is Berlin's, in summer too.
	tm, err := parseWhen("13.07.2027 18:00")
	if err != nil || !tm.Equal(mustTime(t, "2027-07-13T16:00:00Z")) {
		t.Fatalf("parseWhen: %v %v", tm, err)
	}
	if o.when(tm) != "Di 13.07.2027 18:00" || (&options{lang: "en"}).when(tm) != "Tue 2027-07-13 18:00" {
		t.Fatalf("round trip: %s", o.when(tm))
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := parseWhen(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
