package rpcapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fuzzSeeds are request bodies from the conformance tests and a few odd
// shapes.
func fuzzSeeds() []string {
	return []string{
		`{"jsonrpc":"2.0","id":1,"method":"node.info"}`,
		`{"jsonrpc":"2.0","id":"x","method":"msg.send","params":{"to":"` + okAddr + `","text":"hi","ttl":5}}`,
		`{"jsonrpc":"2.0","id":1,"method":"msg.send","params":{"to":"` + okAddr + `","payload":"aGk=","sealed_sender":true}}`,
		`{"jsonrpc":"2.0","id":1,"method":"msg.inbox","params":{"after":3,"limit":1001}}`,
		`{"jsonrpc":"2.0","id":1,"method":"msg.ack","params":{"seqs":[1,2]}}`,
		`{"jsonrpc":"2.0","id":1,"method":"node.connect","params":{"addr":"/ip4/192.0.2.1/tcp/1/p2p/x"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"msg.subscribe"}`,
		`{"jsonrpc":"2.0","id":1,"method":"rpc.discover","params":[]}`,
		`[{"jsonrpc":"2.0","id":1,"method":"store.stats"},{"jsonrpc":"2.0","method":"route.table"},1,"x",null]`,
		`[]`, `{}`, `null`, `[[]]`, `{"jsonrpc":"2.0","id":[],"method":"node.peers"}`,
		`{"jsonrpc":"2.0","id":1,"result":5}`, `{"jsonrpc":"2.0","id":1,"method":"node.info","params":{"x":1}}`,
		"\x00\xff{", `{"jsonrpc":"2.0","id":1e400,"method":"node.info"}`, `{"jsonrpc":"2.0","id":-0.5,"method":"nope"}`,
		`{"jsonrpc":"2.0","id":1,"method":"fapp.query","params":{"plz_prefix":"10","verfahren":["VERHALTENSTHERAPIE"],"zeitfenster":["mo-fr 17:00-21:00"]}}`,
		`{"jsonrpc":"2.0","id":1,"method":"fapp.publish","params":{"slots":[{"terminart":"GRUPPENTHERAPIE","verfahren":"SYSTEMISCH","start":"2027-01-12T18:00:00+01:00","dauer":100,"plaetze":6}]}}`,
		`{"jsonrpc":"2.0","id":1,"method":"fapp.profile","params":{"set":{"name":"x","plz":"01067","verfahren":["SYSTEMISCH"],"kostentraeger":["PKV"],"altersgruppen":["KINDER_JUGENDLICHE"]}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"fapp.reserve","params":{"slot":"` + strings.Repeat("aa", 32) + `/1","kontakt":"x"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"fapp.credential.import","params":{"credential":"fapp-credential:AQID"}}`,
	}
}

// checkResponses asserts b is one well-formed response or a non-empty
// array of them.
func checkResponses(t *testing.T, b []byte) {
	t.Helper()
	b = bytes.TrimSpace(b)
	var msgs []json.RawMessage
	if len(b) > 0 && b[0] == '[' {
		if err := json.Unmarshal(b, &msgs); err != nil || len(msgs) == 0 {
			t.Fatalf("malformed batch response %q: %v", b, err)
		}
	} else {
		msgs = []json.RawMessage{b}
	}
	for _, m := range msgs {
		var keys map[string]json.RawMessage
		var r struct {
			JSONRPC string `json:"jsonrpc"`
			Error   *Error `json:"error"`
		}
		if err := json.Unmarshal(m, &keys); err != nil {
			t.Fatalf("malformed response %q: %v", m, err)
		}
		if err := json.Unmarshal(m, &r); err != nil {
			t.Fatalf("malformed response %q: %v", m, err)
		}
		_, hasID := keys["id"]
		_, hasResult := keys["result"]
		if r.JSONRPC != "2.0" || !hasID || hasResult == (r.Error != nil) || len(keys) != 3 {
			t.Fatalf("malformed response %q", m)
		}
		if r.Error != nil && (r.Error.Message == "" || r.Error.Code == 0) {
			t.Fatalf("error without code or message: %q", m)
		}
	}
}

// FuzzHTTPBody feeds arbitrary bodies to the HTTP bridge.
func FuzzHTTPBody(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add([]byte(s))
	}
	e := newEnv(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		out, ok := e.srv.handleBody(context.Background(), body)
		if !ok {
			return // only notifications
		}
		checkResponses(t, out)
	})
}

// FuzzSocket feeds arbitrary bytes to a socket connection, followed by a
// known request, and checks every line the server writes until that
// request's response.
func FuzzSocket(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add([]byte(s + "\n"))
	}
	f.Add([]byte("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"node.info\"}\r\n\n  \n[1]\n"))
	e := newEnv(f)
	var mu sync.Mutex // one connection at a time keeps the fake node small
	f.Fuzz(func(t *testing.T, in []byte) {
		mu.Lock()
		defer mu.Unlock()
		c, err := net.Dial("unix", e.srv.SocketPath())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		const sentinel = `"fuzz-sentinel-7f3a"`
		go func() {
			c.Write(in)
			io.WriteString(c, "\n{\"jsonrpc\":\"2.0\",\"id\":"+sentinel+",\"method\":\"node.info\"}\n")
		}()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		var last []byte
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				if errors.Is(err, io.EOF) && bytes.Contains(last, []byte(`"code":-32004`)) {
					return // an oversized line: answered, then closed
				}
				t.Fatalf("after %q: %v", last, err)
			}
			if bytes.Contains(line, []byte(`"method":"msg.event"`)) {
				continue // a notification after msg.subscribe
			}
			checkResponses(t, line)
			if bytes.Contains(line, []byte(`"id":`+sentinel)) && !bytes.HasPrefix(line, []byte("[")) {
				return
			}
			last = line
		}
	})
}

// BenchmarkNodeInfoSocket measures node.info round trips through the Go
// client over the unix socket, with one connection and with several, and
// reports requests per second and the 99th percentile latency.
func BenchmarkNodeInfoSocket(b *testing.B) {
	for _, conns := range []int{1, 4} {
		b.Run(fmt.Sprintf("%dconn", conns), func(b *testing.B) {
			e := newEnv(b)
			ctx := context.Background()
			clients := make([]*Client, conns)
			for i := range clients {
				c, err := Dial(ctx, e.srv.SocketPath())
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				clients[i] = c
			}
			lat := make([][]time.Duration, conns)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for i, c := range clients {
				n := b.N / conns
				if i < b.N%conns {
					n++
				}
				lat[i] = make([]time.Duration, 0, n)
				wg.Go(func() {
					for range n {
						t0 := time.Now()
						if _, err := c.Info(ctx); err != nil {
							b.Error(err)
							return
						}
						lat[i] = append(lat[i], time.Since(t0))
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			all := slices.Concat(lat...)
			slices.Sort(all)
			if len(all) > 0 {
				p99 := all[min(len(all)-1, len(all)*99/100)]
				b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
		})
	}
}
