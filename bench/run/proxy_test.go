package main

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestProxyScenario: "-only proxy" selects the proxy scenario alone: 16
// connections of 64 KiB messages, one at a time, each crossing the server
// twice.
func TestProxyScenario(t *testing.T) {
	c := &config{only: regexp.MustCompile("proxy")}
	var got []scenario
	for _, sc := range scenarios {
		if c.only.MatchString(sc.name) {
			got = append(got, sc)
		} else if sc.proto == "proxy" {
			t.Errorf("%s is a proxy scenario -only proxy misses", sc.name)
		}
	}
	if len(got) != 1 {
		t.Fatalf("-only proxy selects %d scenarios", len(got))
	}
	sc := got[0]
	if sc.proto != "proxy" || sc.kind != "loadgen" || sc.through != 2*65536 || sc.tls {
		t.Errorf("%+v", sc)
	}
	if a := strings.Join(loadgenArgs(sc, "A", time.Second), " "); a != "-addr A -c 16 -s 65536 -p 1 -d 1s" {
		t.Errorf("loadgen %s", a)
	}
	if !c.selected("proxy") || c.selected("echo") || c.selected("tls") {
		t.Error("selected")
	}
}

// TestProxyServers: the proxy scenario gets examples/proxy splicing and
// copying on both engines and Go net, all forwarding to c.proxyTo as it is
// when they start; the backend is examples/echo on io_uring.
func TestProxyServers(t *testing.T) {
	c := &config{servers: regexp.MustCompile(""), binDir: "/b"}
	srvs, _ := c.servers2()
	c.proxyTo = "127.0.0.1:9" // set once the backend runs, after servers2
	var names []string
	got := map[string]string{}
	for _, s := range srvs {
		if s.proto == "proxy" {
			names = append(names, s.name)
			got[s.name] = strings.Join(append(s.argv("127.0.0.1:1"), s.env...), " ")
			if s.ours != strings.HasPrefix(s.name, "ringmachine-") {
				t.Errorf("%s: ours %v", s.name, s.ours)
			}
		}
	}
	want := map[string]string{
		"ringmachine-uring-splice":        "/b/rm-proxy -addr 127.0.0.1:1 -to 127.0.0.1:9 RINGMACHINE_BACKEND=uring",
		"ringmachine-epoll-splice":        "/b/rm-proxy -addr 127.0.0.1:1 -to 127.0.0.1:9 RINGMACHINE_BACKEND=epoll",
		"ringmachine-uring-copy":          "/b/rm-proxy -addr 127.0.0.1:1 -to 127.0.0.1:9 -copy RINGMACHINE_BACKEND=uring",
		"ringmachine-epoll-copy":          "/b/rm-proxy -addr 127.0.0.1:1 -to 127.0.0.1:9 -copy RINGMACHINE_BACKEND=epoll",
		"ringmachine-uring-splice-worker": "/b/rm-proxy -addr 127.0.0.1:1 -to 127.0.0.1:9 -splice-worker RINGMACHINE_BACKEND=uring",
		"net":                             "/b/peer -impl net -proto proxy -addr 127.0.0.1:1 -to 127.0.0.1:9",
	}
	wantOrder := []string{"ringmachine-uring-splice", "ringmachine-epoll-splice", "ringmachine-uring-copy", "ringmachine-epoll-copy", "ringmachine-uring-splice-worker", "net"}
	if !slices.Equal(names, wantOrder) {
		t.Errorf("proxy servers %q, want %q", names, wantOrder)
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: %q, want %q", name, got[name], w)
		}
	}
	be := c.proxyBackend()
	if a := strings.Join(append(be.argv("127.0.0.1:2"), be.env...), " "); a != "/b/rm-echo -addr 127.0.0.1:2 -loops 1 RINGMACHINE_BACKEND=uring" {
		t.Errorf("backend %q", a)
	}
}

// TestProxyReport: the proxy table adds MB/s and MB per server CPU second
// (2 × 64 KiB a request), compares with net, and ends with splice ÷ copy
// in MB per server CPU second for each engine.
func TestProxyReport(t *testing.T) {
	i := slices.IndexFunc(scenarios, func(sc scenario) bool { return sc.proto == "proxy" })
	sc := scenarios[i]
	res := []*result{
		// 10,000 req/s; 0.5 s of CPU per 10,000 requests = 50 s / M req.
		{scenario: sc, server: "ringmachine-uring-splice", ours: true, samples: []sample{smp(10000, 0.5)}},
		{scenario: sc, server: "ringmachine-uring-copy", ours: true, samples: []sample{smp(10000, 1)}},
		{scenario: sc, server: "ringmachine-epoll-splice", ours: true, samples: []sample{smp(12000, 0.3)}},
		{scenario: sc, server: "net", samples: []sample{smp(8000, 0.4)}},
	}
	out := formatReport(res)
	reportHas(t, out,
		"| server | req/s | MB/s | p50 µs | p99 µs | p99.9 µs | server CPU s / M req | MB / server CPU s | spread | vs best peer | load CPU | errors |\n"+
			"|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
		// 10,000 × 131,072 B = 1,311 MB/s; 131,072 B × 10^6 / 50 s = 2,621 MB per CPU s.
		"| **ringmachine-uring-splice** | 10,000 | 1,311 | 100 | 900 | – | 50.00 | 2,621 | – | 1.25× net | 50 % | 0 |\n",
		"| **ringmachine-uring-copy** | 10,000 | 1,311 | 100 | 900 | – | 100.00 | 1,311 | – | 1.25× net | 50 % | 0 |\n",
		"| net | 8,000 | 1,049 | 100 | 900 | – | 50.00 | 2,621 | – | 1.00× net | 50 % | 0 |\n",
		// epoll has no copy row: only uring is compared.
		"Splice ÷ copy, MB per server CPU s: ringmachine-uring 2.00×.\n",
		"| proxy 16 conns x 64 KiB | ringmachine-uring-splice | 1.25 |\n",
	)
	if st := standings(res); len(st) != 3 || st[0].peer != "net" {
		t.Errorf("standings %+v", st)
	}
	// Other scenarios keep their columns.
	if out := formatReport([]*result{{scenario: scenarios[0], server: "net", samples: []sample{smp(1, 1)}}}); strings.Contains(out, "MB/s") || strings.Contains(out, "Splice") {
		t.Errorf("MB columns outside the proxy scenario:\n%s", out)
	}
}
