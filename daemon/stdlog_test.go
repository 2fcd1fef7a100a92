package daemon

import (
	"bytes"
	"encoding/json"
	"log"
	"log/slog"
	"os"
	"testing"
)

// Lines libraries write with the standard log package come out as JSON
// when the logger is JSON (zeroconf's plain lines broke --log-format json).
func TestRouteStdLog(t *testing.T) {
	var buf bytes.Buffer
	RouteStdLog(slog.New(slog.NewJSONHandler(&buf, nil)))
	t.Cleanup(func() {
		log.SetOutput(os.Stderr)
		log.SetFlags(log.LstdFlags)
	})
	log.Printf("[zeroconf] no suitable IPv4 interface: %s", "udp4: failed")
	var rec map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(buf.Bytes()), &rec); err != nil {
		t.Fatalf("not one JSON line: %q: %v", buf.String(), err)
	}
	if rec["level"] != "WARN" || rec["component"] != "stdlog" || rec["msg"] != "[zeroconf] no suitable IPv4 interface: udp4: failed" {
		t.Fatalf("record %v", rec)
	}
}
