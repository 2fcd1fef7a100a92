package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"meshd.dev/meshd/rpcapi"
)

// The browser test drives the FAPP web page in a real Chromium (Debian's
// chromium package; the test skips without it, and .ci/run fails on that
// skip) against two real daemons: a therapist T and a patient P.

// chromiumPath finds Chromium, or "" (FAPP_CHROMIUM overrides).
func chromiumPath() string {
	if p := os.Getenv("FAPP_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// artifactsDir is where screenshots go: $FAPP_SCREENSHOTS, else
// /tmp/meshd-screenshots.
func artifactsDir(t *testing.T) string {
	dir := os.Getenv("FAPP_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "meshd-screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// webLogin asks the daemon for a one-time login link.
func (p *proc) webLogin(ctx context.Context) string {
	p.t.Helper()
	var res rpcapi.WebLoginResult
	if err := p.client.Call(ctx, rpcapi.MethodWebLogin, nil, &res); err != nil {
		p.t.Fatalf("%s: web.login: %v", p.name, err)
	}
	return res.URL
}

// page is one browser tab.
type page struct {
	t    *testing.T
	name string
	ctx  context.Context
}

func (pg *page) run(what string, steps ...chromedp.Action[chromedp.Void]) {
	pg.t.Helper()
	// Each step gets a minute; the page waits for events, not for time.
	ctx, cancel := context.WithTimeout(pg.ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		body, _ := chromedp.Run(pg.ctx, chromedp.Text(chromedp.CSS("body")))
		pg.t.Fatalf("%s: %s: %v\npage text:\n%s", pg.name, what, err, body)
	}
}

// get runs one action with a value.
func get[T any](pg *page, what string, a chromedp.Action[T]) T {
	pg.t.Helper()
	ctx, cancel := context.WithTimeout(pg.ctx, time.Minute)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		pg.t.Fatalf("%s: %s: %v", pg.name, what, err)
	}
	return v
}

func eval[T any](pg *page, what, js string) T {
	pg.t.Helper()
	return get(pg, what, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
}

// screenshots saves the page at 360 and 1280 px width.
func (pg *page) screenshots(dir, name string) {
	pg.t.Helper()
	for _, w := range []int64{360, 1280} {
		pg.run("viewport", chromedp.EmulateViewport(w, 800))
		png := get(pg, "screenshot "+name, chromedp.FullScreenshot(100))
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%d.png", name, w)), png, 0o644); err != nil {
			pg.t.Fatal(err)
		}
	}
	pg.run("viewport", chromedp.EmulateViewport(1280, 800))
}

// axe runs axe-core (FAPP_AXE_JS: the path of axe.min.js) in the page and
// fails on serious or critical violations. Without FAPP_AXE_JS the subtest
// skips; .ci/run sets it and fails on that skip.
func (pg *page) axe(name string) {
	pg.t.Helper()
	pg.t.Run("axe-"+name, func(t *testing.T) {
		path := os.Getenv("FAPP_AXE_JS")
		if path == "" {
			t.Skip("FAPP_AXE_JS is not set: point it at axe.min.js from the axe-core npm package (npm pack axe-core; .ci/run does this)")
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		sub := *pg // the subtest's t for failures
		sub.t = t
		sub.axeRun(t, string(b))
	})
}

func (pg *page) axeRun(t *testing.T, src string) {
	eval[string](pg, "inject axe", src+";'ok'")
	type violation struct {
		ID, Impact, Help string
		Nodes            []struct{ Target []string }
	}
	res := eval[[]violation](pg, "axe.run", `axe.run(document, {runOnly: ['wcag2a','wcag2aa','wcag21a','wcag21aa','best-practice']}).then(r => r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => ({target: n.target.map(String)}))})))`)
	for _, v := range res {
		t.Logf("%s: axe %s (%s): %s %v", pg.name, v.ID, v.Impact, v.Help, v.Nodes)
		if v.Impact == "serious" || v.Impact == "critical" {
			t.Errorf("%s: accessibility violation %s (%s): %s at %v", pg.name, v.ID, v.Impact, v.Help, v.Nodes)
		}
	}
}

const injection = `<img src=x onerror=document.body.dataset.pwned=1>`

// TestWebPageBrowser: the therapist imports a credential, sets the profile
// and publishes a Sprechstunde through the page; the patient finds it
// through the page and reserves; the therapist confirms through the page;
// the patient's page shows BESTAETIGT without a reload. Then a profile
// name that is HTML renders as text, and axe-core finds no serious
// accessibility violations.
func TestWebPageBrowser(t *testing.T) {
	chrome := chromiumPath()
	if chrome == "" {
		t.Skip("no chromium on PATH (Debian: apt-get install chromium)")
	}
	endToEnd(t, "builds binaries, runs two daemons and Chromium")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	shots := artifactsDir(t)

	issuerDir := filepath.Join(t.TempDir(), "kammer")
	var issuer struct{ Key string }
	if err := json.Unmarshal([]byte(fappRun(t, "--json", "issuer", "--dir", issuerDir, "init")), &issuer); err != nil {
		t.Fatal(err)
	}
	th, pat := newProc(t, "T"), newProc(t, "P")
	trust := fmt.Sprintf("trusted_issuers = [%q]\n", issuer.Key)
	th.writeConfig("[fapp]\nepoch = \"1s\"\n" + trust)
	pat.writeConfig("[fapp]\nepoch = \"1s\"\nregions = [\"10\"]\n" + trust)
	for _, p := range []*proc{th, pat} {
		p.extra = []string{"--api", "127.0.0.1:0"}
		p.start(ctx)
		defer func(p *proc) {
			if p.cmd.ProcessState == nil {
				p.cmd.Process.Kill()
				<-p.exited
			}
		}(p)
	}
	pat.ctl("connect", th.info.ListenAddrs[0])
	pat.waitPeer(ctx, th.info.Address)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome), chromedp.NoSandbox,
		// German locale everywhere Chromium looks (flag, Accept-Language,
		// environment). Date and time inputs follow the browser's UI locale,
		// which needs Chromium's German resources (chromium-l10n, often not
		// installed); LangAttributeAwareFormControlUI makes them follow the
		// page's lang="de" instead, so the screenshots show German pickers.
		chromedp.Flag("lang", "de-DE"), chromedp.Flag("accept-lang", "de-DE,de"), chromedp.Env("LANG=de_DE.UTF-8", "LANGUAGE=de_DE:de"),
		chromedp.Flag("enable-blink-features", "LangAttributeAwareFormControlUI"),
		chromedp.WindowSize(1280, 800))
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	open := func(p *proc) *page {
		c, _ := chromedp.NewContext(bctx)
		pg := &page{t: t, name: p.name, ctx: c}
		if err := chromedp.Do(c); err != nil { // opens the tab, for the life of c
			t.Fatalf("new tab: %v", err)
		}
		pg.run("login", chromedp.Navigate(p.webLogin(ctx)), chromedp.WaitVisible(chromedp.CSS(`body[data-ready="true"]`)))
		loc := get(pg, "location", chromedp.Location())
		if strings.Contains(loc, "code=") || !strings.HasSuffix(loc, "/app/") {
			t.Fatalf("%s: after login the address is %q; want /app/ without the code", p.name, loc)
		}
		return pg
	}
	tp, pp := open(th), open(pat)
	if l := eval[string](tp, "navigator.language", "navigator.language"); !strings.HasPrefix(l, "de") {
		t.Fatalf("Chromium runs with navigator.language %q; the screenshots need a German locale", l)
	}

	// 1. The therapist: credential, profile, a Sprechstunde, through the page.
	tp.run("therapist view", chromedp.Click(chromedp.CSS("#tab-therapist")), chromedp.WaitVisible(chromedp.CSS("code.identity")))
	identity := get(tp, "identity", chromedp.Text(chromedp.CSS("code.identity")))
	cred := strings.TrimSpace(fappRun(t, "issuer", "--dir", issuerDir, "issue", "--identity", identity,
		"--beruf", "PSYCHOLOGISCHER_PSYCHOTHERAPEUT", "--registry-id", "PTK-BE 4711", "--valid-to", "2036-01-01"))
	tp.run("credential", chromedp.SetValue(chromedp.CSS("#cred-text"), cred), chromedp.Click(chromedp.CSS("#cred button")),
		chromedp.WaitNotPresent(chromedp.CSS("#cred-text")))
	tp.run("profile", chromedp.SendKeys(chromedp.CSS("#p-name"), "Praxis Dr. Beispiel"), chromedp.SendKeys(chromedp.CSS("#p-plz"), "10115"),
		chromedp.Click(chromedp.CSS("#p-verfahren-VERHALTENSTHERAPIE")), chromedp.Click(chromedp.CSS("#p-kostentraeger-GKV")),
		chromedp.Click(chromedp.CSS("#p-altersgruppen-ERWACHSENE")), chromedp.SendKeys(chromedp.CSS("#p-sprachen"), "de, en"),
		chromedp.SendKeys(chromedp.CSS("#p-schwerpunkte"), "Angst, Depression"), chromedp.Click(chromedp.CSS("#profile button[type=submit]")),
		chromedp.WaitVisible(chromedp.Search(`//p[@id="status"][contains(., "Profil gespeichert")]`)))
	berlin, _ := time.LoadLocation("Europe/Berlin")
	start := time.Now().In(berlin).Add(72 * time.Hour).Truncate(time.Hour)
	start = time.Date(start.Year(), start.Month(), start.Day(), 18, 0, 0, 0, berlin)
	tp.run("publish", chromedp.SetValue(chromedp.CSS("#s-start"), start.Format("2006-01-02T15:04")),
		chromedp.Click(chromedp.CSS("#slot button[type=submit]")), chromedp.WaitVisible(chromedp.CSS("#slots .slot")))

	// 2. The patient searches; the page re-runs the search on fapp-index
	// events until the slot arrives.
	pp.run("search", chromedp.SendKeys(chromedp.CSS("#q-plz"), "10"),
		chromedp.SetValue(chromedp.CSS("#q-verfahren"), "VERHALTENSTHERAPIE"), chromedp.SetValue(chromedp.CSS("#q-kostentraeger"), "GKV"),
		chromedp.Click(chromedp.CSS("#search button[type=submit]")), chromedp.WaitVisible(chromedp.CSS("#results .match")))
	when := get(pp, "slot time", chromedp.Text(chromedp.CSS("#results .match .when")))
	if !strings.Contains(when, "18:00") {
		t.Errorf("slot shown as %q, want 18:00 Berlin time", when)
	}
	pp.screenshots(shots, "patient-search")
	pp.axe("patient-search")

	// 3. Reserve; mark the page to see that it is never reloaded.
	eval[int](pp, "mark", "window.__noReload = 1")
	pp.run("reserve", chromedp.Click(chromedp.CSS("#results .match .reserve")), chromedp.SendKeys(chromedp.CSS(".reserve-form input"), "patient@example.org"),
		chromedp.Click(chromedp.CSS(".reserve-form button")), chromedp.WaitVisible(chromedp.CSS(`#mine .reservation[data-state="ANGEFRAGT"]`)))

	// 4. The therapist's page shows the request (live) and confirms it.
	tp.run("confirm", chromedp.WaitVisible(chromedp.CSS(`#incoming .reservation[data-state="ANGEFRAGT"] .confirm`)),
		chromedp.SendKeys(chromedp.CSS("#incoming .answer input"), "Praxis Beispiel, Invalidenstr. 1, 10115 Berlin"),
		chromedp.Click(chromedp.CSS("#incoming .confirm")), chromedp.WaitVisible(chromedp.CSS(`#incoming .reservation[data-state="BESTAETIGT"]`)))
	tp.screenshots(shots, "therapist")
	tp.axe("therapist")

	// 5. The patient's page turns BESTAETIGT by itself.
	pp.run("confirmed", chromedp.WaitVisible(chromedp.CSS(`#mine .reservation[data-state="BESTAETIGT"]`)))
	state := get(pp, "state", chromedp.Text(chromedp.CSS(`#mine .reservation .state`)))
	kept := eval[bool](pp, "no reload", "window.__noReload === 1")
	if state != "Bestätigt" || !kept {
		t.Fatalf("patient sees %q (no reload: %v)", state, kept)
	}
	pp.screenshots(shots, "patient-reservations")
	pp.axe("patient-reservations")

	// 6. Injection: a display name that is HTML renders as text.
	tp.run("evil profile", chromedp.SetValue(chromedp.CSS("#p-name"), injection), chromedp.Click(chromedp.CSS("#profile button[type=submit]")),
		chromedp.WaitVisible(chromedp.Search(`//p[@id="status"][contains(., "Profil gespeichert")]`)),
		chromedp.SetValue(chromedp.CSS("#s-start"), start.Add(24*time.Hour).Format("2006-01-02T15:04")),
		chromedp.Click(chromedp.CSS("#slot button[type=submit]")), chromedp.WaitVisible(chromedp.Search(`//p[@id="status"][contains(., "Veröffentlicht")]`)))
	pp.run("search again", chromedp.Click(chromedp.CSS("#tab-patient")), chromedp.Click(chromedp.CSS("#search button[type=submit]")),
		chromedp.WaitVisible(chromedp.Search(`//li[contains(@class,"match")]/h3[contains(., "<img")]`)))
	imgs := eval[int](pp, "img count", `document.querySelectorAll('#results img').length`)
	pwned := eval[bool](pp, "onerror", `document.body.dataset.pwned === '1'`)
	if imgs != 0 || pwned {
		t.Fatalf("the display name was parsed as HTML: %d img elements, onerror ran: %v", imgs, pwned)
	}

	// 7. Edit: the therapist moves the FREI slot through the page; its ID
	// stays, and the patient's open search shows the new time after the
	// next batch. A held or taken slot is refused with a message.
	before, err := th.client.FAPPSlots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	moved := start.Add(48*time.Hour + 90*time.Minute) // two days later, 19:30
	// The slot list re-renders on every event, so the edit buttons are
	// clicked in the page (the current node), not through a node ID that a
	// re-render may have removed.
	clickEdit := func(sel string) {
		tp.t.Helper()
		if !eval[bool](tp, "click "+sel, `(() => { const b = document.querySelector('`+sel+`'); if (b) b.click(); return !!b; })()`) {
			t.Fatalf("no %s in the therapist's slot list", sel)
		}
	}
	tp.run("therapist view again", chromedp.Click(chromedp.CSS("#tab-therapist")), chromedp.WaitVisible(chromedp.CSS(`#slots .slot[data-status="FREI"] .edit`)))
	clickEdit(`#slots .slot:not([data-status="FREI"]) .edit`)
	tp.run("edit refused", chromedp.WaitVisible(chromedp.Search(`//p[@id="status"][contains(., "kann nicht geändert werden")]`)))
	clickEdit(`#slots .slot[data-status="FREI"] .edit`)
	tp.run("edit", chromedp.WaitVisible(chromedp.CSS("#s-cancel")),
		chromedp.SetValue(chromedp.CSS("#s-start"), moved.Format("2006-01-02T15:04")),
		chromedp.Click(chromedp.CSS("#s-submit")),
		chromedp.WaitVisible(chromedp.Search(`//p[@id="status"][contains(., "Änderung gespeichert")]`)),
		chromedp.WaitNotVisible(chromedp.CSS("#s-cancel")))
	after, err := th.client.FAPPSlots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Slots) != len(before.Slots) {
		t.Fatalf("editing changed the number of slots: %d before, %d after", len(before.Slots), len(after.Slots))
	}
	for i, s := range after.Slots {
		if s.ID != before.Slots[i].ID {
			t.Fatalf("slot %d has ID %d after the edit, %d before: the ID must stay", i, s.ID, before.Slots[i].ID)
		}
		if before.Slots[i].Status == "FREI" && !s.Start.Equal(moved) {
			t.Fatalf("edited slot %d starts %v, want %v", s.ID, s.Start, moved)
		}
	}
	pp.run("patient sees the new time", chromedp.Click(chromedp.CSS("#tab-patient")), chromedp.Click(chromedp.CSS("#search button[type=submit]")),
		chromedp.WaitVisible(chromedp.Search(`//li[contains(@class,"match")]//*[contains(@class,"when")][contains(., "`+moved.Format("02.01.2006")+`, 19:30")]`)))
	if old := eval[int](pp, "old time", `[...document.querySelectorAll('#results .match .when')].filter(n => n.textContent.includes('`+start.Add(24*time.Hour).Format("02.01.2006")+`')).length`); old != 0 {
		t.Fatalf("the patient still sees the slot at its old time (%d matches)", old)
	}

	// 8. Transfer size and time to interactive of the page on loopback.
	type perfFigures struct{ Bytes, Ready, DOM float64 }
	fresh := open(pat)
	perf := eval[perfFigures](fresh, "perf", `(() => { const n = performance.getEntriesByType('navigation')[0];
		const r = performance.getEntriesByType('resource').filter(e => !e.name.includes('/app/rpc') && !e.name.includes('/app/session'));
		const m = performance.getEntriesByName('fapp-ready')[0];
		return {bytes: n.transferSize + r.reduce((s, e) => s + e.transferSize, 0), ready: m ? m.startTime : -1, dom: n.domInteractive}; })()`)
	t.Logf("page transfer %.0f bytes, DOM interactive %.1f ms, ready (session + first render) %.1f ms; screenshots in %s", perf.Bytes, perf.DOM, perf.Ready, shots)
}
