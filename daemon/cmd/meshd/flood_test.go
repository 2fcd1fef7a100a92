package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"meshd.dev/meshd/daemon"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"meshd.dev/meshd/protocol"
	"meshd.dev/meshd/rpcapi"
	"meshd.dev/meshd/transports/p2p"
)

// BenchmarkJunkFlood attacks the real meshd binary (a child process: badger
// store, libp2p on 127.0.0.1, mDNS off) the way issue 9 did before its
// fixes. Two in-process meshd link hosts (transports/p2p, each with its own
// identity and host key, so their hellos carry valid host certificates)
// connect to it: a hostile one and an honest one. The hostile peer sends
//
//	(a) signed envelopes with 16 KiB payloads to random destinations
//	    (JUNKFLOOD_ENVELOPES, default 600; the attack is 6,000),
//	(b) then well-formed path requests with random IDs and targets, as fast
//	    as its link takes them (JUNKFLOOD_PATHREQS, default 30,000; the
//	    issue's attack is 300,000),
//
// and then (c) the victim restarts on its data directory.
// With JUNKFLOOD_HOSTILE=n, n hostile neighbours (each its own identity)
// send the envelopes, each as many; the first sends the path requests. With
// JUNKFLOOD_SEALED=1 the envelopes are sealed-sender ones with random
// payloads (unsigned: no forwarder can authenticate them).
//
// It reports the victim's resident memory (VmRSS, and VmHWM reset before
// each phase through /proc/<pid>/clear_refs), its custody figures and
// lookups from /metrics, and the frames the honest peer received during the
// path request flood. The victim's own msg.send must be accepted before,
// during and after both floods: a refusal fails the benchmark. Waits poll
// the victim's metrics with a deadline. JUNKFLOOD_COUNT_REFUSALS=1 counts
// refusals (metric own-refused) instead, for measuring code that refuses.
// The full-size run (docs/performance.md):
//
//	JUNKFLOOD_ENVELOPES=6000 JUNKFLOOD_PATHREQS=300000 \
//	  go test -run '^$' -bench JunkFlood -benchtime 1x -timeout 30m ./daemon/cmd/meshd
func BenchmarkJunkFlood(b *testing.B) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		b.Skip("needs /proc")
	}
	envN := envCount(b, "JUNKFLOOD_ENVELOPES", 600)
	preqN := envCount(b, "JUNKFLOOD_PATHREQS", 30000)
	hostiles := max(envCount(b, "JUNKFLOOD_HOSTILE", 1), 1)
	sealed := os.Getenv("JUNKFLOOD_SEALED") == "1"
	for range b.N {
		runJunkFlood(b, envN, preqN, hostiles, sealed)
	}
}

func envCount(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		b.Fatalf("%s=%q: want a count", name, s)
	}
	return n
}

// floodPhaseTimeout bounds each phase of the flood (the full-size envelope
// phase moves 96 MiB and checks 6,000 signatures on 2 busy cores).
const floodPhaseTimeout = 10 * time.Minute

// runJunkFlood runs the phases with hostiles hostile neighbours, each of
// which sends envN envelopes; the first one sends the path requests.
func runJunkFlood(b *testing.B, envN, preqN, hostiles int, sealed bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*floodPhaseTimeout)
	defer cancel()
	v := newProc(b, "victim")
	v.logLevel = "info" // a debug line per junk frame would measure the logger
	v.extra = []string{"--metrics", "127.0.0.1:0"}
	// The flood peers are bare link hosts that read envelopes and answer
	// no session handshake: the victim's own messages go as envelopes.
	if err := os.MkdirAll(v.dir, 0o700); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v.dir, daemon.ConfigFileName), []byte("[routing]\nsessions = false\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	v.start(ctx)
	defer v.stop(ctx)
	metricsURL := v.metricsURL()
	pid := v.cmd.Process.Pid

	var peers []*floodPeer
	for range hostiles + 1 {
		peers = append(peers, newFloodPeer(b, ctx))
	}
	honest, hostile := peers[0], peers[1]
	for _, p := range peers {
		p.connect(ctx, v)
		v.waitPeer(ctx, p.id.Address().String())
	}
	drainEvents(v.events) // nobody reads them from here on

	own := &ownSender{b: b, v: v, honest: honest.id.Address().String(), countRefusals: os.Getenv("JUNKFLOOD_COUNT_REFUSALS") == "1"}
	own.check(ctx, "before the flood")
	m0 := waitMetrics(ctx, b, metricsURL, "queued_frames", func(m metrics) bool { return m.get("queued_frames") == 0 })
	base, _ := procMemory(b, pid)
	b.ReportMetric(base, "MB-base-rss")
	reportRSSParts(b, pid, "base")

	// (a) Junk envelopes.
	resetPeak(b, pid)
	start := time.Now()
	errs := make([]error, hostiles)
	victim := p2pID(b, v.peerID())
	var wg sync.WaitGroup
	for i, p := range peers[1:] {
		wg.Go(func() { errs[i] = p.sendEnvelopes(ctx, envN, victim, sealed) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
	m1 := waitMetrics(ctx, b, metricsURL, fmt.Sprintf("%d frames in", envN*hostiles), func(m metrics) bool {
		return m.get("frames_in_total") >= m0.get("frames_in_total")+float64(envN*hostiles)
	})
	b.Logf("envelopes: %d in %.1f s", envN, time.Since(start).Seconds())
	own.check(ctx, "after the envelope flood")
	rss, hwm := procMemory(b, pid)
	b.ReportMetric(hwm, "MB-env-peak-rss")
	b.ReportMetric(rss, "MB-env-rss")
	reportRSSParts(b, pid, "env")
	b.ReportMetric(m1.get("custody_bytes")/(1<<20), "MiB-custody")
	b.ReportMetric(m1.get("custody_count"), "custody-records")
	b.ReportMetric(m1.delta(m0, "custody_accepted_total"), "custody-accepted")
	b.ReportMetric(m1.delta(m0, "custody_refused_total"), "custody-refused")
	b.ReportMetric(m1.delta(m0, "lookups_total"), "env-lookups")
	b.ReportMetric(m1.delta(m0, "lookups_limited_total"), "env-lookups-limited")
	b.ReportMetric(m1.delta(m0, "sealed_rate_limited_total"), "env-sealed-limited")

	// (b) Path requests, with the victim's own sends going on meanwhile.
	resetPeak(b, pid)
	preqBefore := honest.preqs.Load()
	stopSends := own.loop(ctx)
	start = time.Now()
	hostile.sendPathRequests(ctx, preqN, v.peerID())
	m2 := waitMetrics(ctx, b, metricsURL, fmt.Sprintf("%d more frames in", preqN), func(m metrics) bool {
		return m.get("frames_in_total") >= m1.get("frames_in_total")+float64(preqN) && m.get("queued_frames") == 0
	})
	elapsed := time.Since(start)
	ok := stopSends()
	// A marker sent now reaches the honest peer after every frame the flood
	// made the victim queue for it: the link is one ordered stream.
	if id := own.send(ctx, "marker"); id != "" {
		honest.waitMarker(ctx, id)
	}
	got := honest.preqs.Load() - preqBefore
	b.Logf("path requests: %d in %.1f s (%.0f/s); own sends during the flood: %d accepted", preqN, elapsed.Seconds(), float64(preqN)/elapsed.Seconds(), ok)
	own.check(ctx, "after the path request flood")
	rss, hwm = procMemory(b, pid)
	b.ReportMetric(hwm, "MB-preq-peak-rss")
	b.ReportMetric(rss, "MB-preq-rss")
	reportRSSParts(b, pid, "preq")
	b.ReportMetric(float64(preqN)/elapsed.Seconds(), "preqs-in/s")
	b.ReportMetric(float64(got), "preqs-to-honest")
	b.ReportMetric(m2.delta(m1, "path_requests_limited_total"), "preqs-limited")
	b.ReportMetric(m2.get("path_requests_pending"), "preqs-pending")
	b.ReportMetric(m2.delta(m1, "lookups_total"), "preq-lookups")
	b.ReportMetric(float64(ok), "own-sends-during")

	// (c) A restart: the junk in custody is restored (within the quotas),
	// and the node's own messages must still be taken.
	v.stop(ctx)
	v.start(ctx)
	drainEvents(v.events)
	m3, err := scrape(ctx, v.metricsURL())
	if err != nil {
		b.Fatal(err)
	}
	own.sendTo(ctx, randAddress().String(), "to an unknown node after a restart", "awaiting-key")
	rss, _ = procMemory(b, v.cmd.Process.Pid)
	b.ReportMetric(rss, "MB-restart-rss")
	reportRSSParts(b, v.cmd.Process.Pid, "restart")
	b.ReportMetric(m3.get("custody_bytes")/(1<<20), "MiB-restart-custody")
	b.ReportMetric(m3.get("custody_restore_dropped_total"), "restore-dropped")
	b.ReportMetric(float64(own.refused.Load()), "own-refused")
	b.ReportMetric(float64(v.logWarnings(b)), "log-warnings")
}

// logWarnings counts the victim's WARN and ERROR log lines and logs the
// first few.
func (p *proc) logWarnings(b *testing.B) int {
	n := 0
	for _, line := range strings.Split(p.logText(), "\n") {
		if strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`) {
			if n++; n <= 5 {
				b.Logf("victim: %s", line)
			}
		}
	}
	return n
}

// drainEvents reads ch until it closes (when its client does), so the
// client's notification stream keeps moving while nobody waits for events.
func drainEvents(ch <-chan rpcapi.Event) {
	go func() {
		for range ch {
		}
	}()
}

// floodPeer is a meshd link host in the benchmark's process: a real
// transports/p2p Host with an identity and host key of its own, whose Send
// writes raw frames on its link to the victim.
type floodPeer struct {
	b      *testing.B
	id     *protocol.Identity
	h      *p2p.Host
	up     chan struct{}
	marker chan protocol.MessageID // IDs of envelopes received
	preqs  atomic.Int64            // path requests received
}

func newFloodPeer(b *testing.B, ctx context.Context) *floodPeer {
	b.Helper()
	id, err := protocol.NewIdentity(crand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	_, key, err := ed25519.GenerateKey(crand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	h, err := p2p.New(ctx, p2p.Config{
		Identity: id, HostKey: key, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
		DHTMode: "server", Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	p := &floodPeer{b: b, id: id, h: h, up: make(chan struct{}), marker: make(chan protocol.MessageID, 1024)}
	done := make(chan struct{})
	go p.readEvents(done)
	b.Cleanup(func() {
		if err := h.Close(); err != nil {
			b.Error(err)
		}
		<-done
	})
	return p
}

// readEvents counts what the victim sends until the host closes.
func (p *floodPeer) readEvents(done chan struct{}) {
	defer close(done)
	var once sync.Once
	for ev := range p.h.Events() {
		switch ev := ev.(type) {
		case p2p.LinkUp:
			once.Do(func() { close(p.up) })
		case p2p.Frame:
			k, err := protocol.PeekKind(ev.Data)
			if err != nil {
				continue
			}
			switch k {
			case protocol.KindPathRequest:
				p.preqs.Add(1)
			case protocol.KindEnvelope:
				if id, err := protocol.EnvelopeID(ev.Data); err == nil {
					select {
					case p.marker <- id:
					default: // only the newest matter
					}
				}
			}
		}
	}
}

func (p *floodPeer) connect(ctx context.Context, v *proc) {
	p.b.Helper()
	if _, err := p.h.Connect(ctx, v.info.ListenAddrs[0]); err != nil {
		p.b.Fatal(err)
	}
	select {
	case <-p.up:
	case <-ctx.Done():
		p.b.Fatal("no link to the victim")
	}
}

// waitMarker waits until the envelope with the hex ID id arrived.
func (p *floodPeer) waitMarker(ctx context.Context, id string) {
	p.b.Helper()
	for {
		select {
		case got := <-p.marker:
			if got.String() == id {
				return
			}
		case <-ctx.Done():
			p.b.Fatalf("marker %s not received", id)
		}
	}
}

// junkEnvelope is an envelope signed by p, or with sealed a sealed-sender
// envelope whose payload is random bytes: no forwarder can tell it from a
// real one, as none can open it.
func (p *floodPeer) junkEnvelope(h protocol.Header, payload []byte, sealed bool) (*protocol.Envelope, error) {
	if !sealed {
		return protocol.SignEnvelope(p.id, h, payload)
	}
	return &protocol.Envelope{
		Type: h.Type, Flags: protocol.FlagSealed | protocol.FlagSealedSender, HopLimit: h.HopLimit,
		ID: h.ID, Created: h.Created, Expires: h.Expires, Dest: h.Dest, Payload: payload,
	}, nil
}

// sendEnvelopes sends n junk envelopes to the peer to. It may run in a
// goroutine of its own, so it returns its error.
func (p *floodPeer) sendEnvelopes(ctx context.Context, n int, to peer.ID, sealed bool) error {
	payload := make([]byte, 16<<10)
	now := time.Now()
	for range n {
		h := protocol.Header{
			Type: protocol.TypeMessage, HopLimit: 16, Created: protocol.TimestampOf(now),
			Expires: protocol.TimestampOf(now.Add(protocol.MaxLifetime)), Dest: randAddress(),
		}
		crand.Read(h.ID[:])
		crand.Read(payload)
		e, err := p.junkEnvelope(h, payload, sealed)
		if err != nil {
			return err
		}
		raw, err := e.MarshalBinary()
		if err != nil {
			return err
		}
		if err := p.h.Send(ctx, to, raw); err != nil {
			return err
		}
	}
	return nil
}

func (p *floodPeer) sendPathRequests(ctx context.Context, n int, to string) {
	p.b.Helper()
	dest := p2pID(p.b, to)
	var frame []byte
	for range n {
		r := protocol.PathRequest{Target: randAddress(), HopLimit: 8}
		crand.Read(r.ID[:])
		frame = r.AppendTo(frame[:0])
		if err := p.h.Send(ctx, dest, frame); err != nil { // Send copies the frame
			p.b.Fatal(err)
		}
	}
}

// randAddress returns a random address (never the zero address, which no
// frame may name).
func randAddress() protocol.Address {
	for {
		var a protocol.Address
		crand.Read(a[:])
		if !a.IsZero() {
			return a
		}
	}
}

// ownSender makes the victim send its own messages through msg.send.
type ownSender struct {
	b             *testing.B
	v             *proc
	honest        string
	countRefusals bool
	refused       atomic.Int64
}

// send sends text to the honest peer and returns the message ID ("" if
// refused).
func (o *ownSender) send(ctx context.Context, text string) string {
	o.b.Helper()
	return o.sendTo(ctx, o.honest, text, "routed")
}

// sendTo sends text to to and checks the status. A refusal fails the
// benchmark unless refusals are counted (JUNKFLOOD_COUNT_REFUSALS=1, for
// measuring code that refuses).
func (o *ownSender) sendTo(ctx context.Context, to, text, want string) string {
	o.b.Helper()
	res, err := o.v.client.Send(ctx, rpcapi.SendParams{To: to, Text: text})
	if err == nil && res.Status != want {
		err = fmt.Errorf("status %q, want %q", res.Status, want)
	}
	if err != nil {
		if !o.countRefusals {
			o.b.Fatalf("the victim refused its own message to %s (%s): %v", to, text, err)
		}
		o.b.Logf("own message refused (%s): %v", text, err)
		o.refused.Add(1)
		return ""
	}
	return res.ID
}

// check sends one message to the honest neighbour (routed) and one to an
// unknown address (kept in custody while its key is looked up: the case the
// issue saw refused with "custody quota exceeded").
func (o *ownSender) check(ctx context.Context, when string) {
	o.b.Helper()
	o.send(ctx, "to a neighbour "+when)
	o.sendTo(ctx, randAddress().String(), "to an unknown node "+when, "awaiting-key")
}

// loop sends own messages to the honest peer one after the other until
// the returned function is called, which returns how many were accepted.
func (o *ownSender) loop(ctx context.Context) (stop func() int) {
	ctx, cancel := context.WithCancel(ctx)
	var n int
	var failed error
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ctx.Err() == nil; i++ {
			res, err := o.v.client.Send(ctx, rpcapi.SendParams{To: o.honest, Text: "during the flood " + strconv.Itoa(i)})
			if ctx.Err() != nil {
				return
			}
			if err == nil && res.Status != "routed" {
				err = fmt.Errorf("status %q", res.Status)
			}
			switch {
			case err == nil:
				n++
			case o.countRefusals:
				o.refused.Add(1)
			default:
				failed = err
				return
			}
		}
	}()
	return func() int {
		cancel()
		<-done
		if failed != nil {
			o.b.Fatalf("the victim refused its own message during the flood after %d: %v", n, failed)
		}
		return n
	}
}

func p2pID(b *testing.B, s string) peer.ID {
	b.Helper()
	id, err := peer.Decode(s)
	if err != nil {
		b.Fatal(err)
	}
	return id
}

// peerID returns the victim's libp2p peer ID.
func (p *proc) peerID() string { return p.info.PeerID }

// metricsURL returns the /metrics URL the victim logged last.
func (p *proc) metricsURL() string {
	p.t.Helper()
	url := ""
	sc := bufio.NewScanner(strings.NewReader(p.logText()))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg string `json:"msg"`
			URL string `json:"url"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "metrics listening" {
			url = line.URL
		}
	}
	if url != "" {
		return url
	}
	p.t.Fatalf("%s: no \"metrics listening\" line\n%s", p.name, p.logText())
	return ""
}

// metrics are the meshd_routing_* figures of one scrape, by name without
// the prefix.
type metrics map[string]float64

func (m metrics) get(name string) float64 { return m[name] }

func (m metrics) delta(old metrics, name string) float64 { return m[name] - old[name] }

func scrape(ctx context.Context, url string) (metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	m := metrics{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || !strings.HasPrefix(name, "meshd_routing_") {
			continue
		}
		f, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return nil, fmt.Errorf("metric %s: %w", name, err)
		}
		m[strings.TrimPrefix(name, "meshd_routing_")] = f
	}
	return m, sc.Err()
}

// metricsPoll is how often waitMetrics looks at the victim's figures.
const metricsPoll = 50 * time.Millisecond

// waitMetrics polls the victim's metrics until ok accepts them, for at
// most floodPhaseTimeout.
func waitMetrics(ctx context.Context, b *testing.B, url, what string, ok func(metrics) bool) metrics {
	b.Helper()
	ctx, cancel := context.WithTimeout(ctx, floodPhaseTimeout)
	defer cancel()
	tick := time.NewTicker(metricsPoll)
	defer tick.Stop()
	var last metrics
	for {
		m, err := scrape(ctx, url)
		if err == nil && ok(m) {
			return m
		}
		if err == nil {
			last = m
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			b.Fatalf("waiting for %s: %v (last figures: frames_in %v, queued_frames %v)", what, ctx.Err(), last.get("frames_in_total"), last.get("queued_frames"))
		}
	}
}

// resetPeak resets pid's VmHWM to its VmRSS (Linux clear_refs 5), so the
// next reading is the peak of what follows.
func resetPeak(b *testing.B, pid int) {
	b.Helper()
	if err := os.WriteFile("/proc/"+strconv.Itoa(pid)+"/clear_refs", []byte("5"), 0); err != nil {
		b.Fatalf("resetting the peak RSS: %v", err)
	}
}

// reportRSSParts reports pid's resident memory by kind: anonymous (the Go
// heap and stacks) and file-backed (badger's memory-mapped files, mostly
// page cache the kernel can take back).
func reportRSSParts(b *testing.B, pid int, phase string) {
	b.Helper()
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || (f[0] != "RssAnon:" && f[0] != "RssFile:") {
			continue
		}
		kb, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			b.Fatalf("%s: %v", line, err)
		}
		b.ReportMetric(kb/1024, "MB-"+phase+"-"+strings.ToLower(strings.TrimSuffix(f[0], ":")))
	}
}
