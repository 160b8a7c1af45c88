package main

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestTLSScenarios: "-only tls" selects the three TLS scenarios and
// nothing else, each against the servers of proto "tls".
func TestTLSScenarios(t *testing.T) {
	c := &config{only: regexp.MustCompile("tls")}
	var names []string
	for _, sc := range scenarios {
		if c.only.MatchString(sc.name) {
			names = append(names, sc.name)
			if sc.proto != "tls" || !sc.tls {
				t.Errorf("%s: proto %q, tls %v", sc.name, sc.proto, sc.tls)
			}
		} else if sc.proto == "tls" || sc.tls {
			t.Errorf("%s is a TLS scenario -only tls misses", sc.name)
		}
	}
	want := []string{"tls handshakes 32 clients", "tls bulk 4 conns x 64 KiB", "tls idle memory"}
	if !slices.Equal(names, want) {
		t.Errorf("-only tls selects %q, want %q", names, want)
	}
	if !c.selected("tls") || c.selected("redis") {
		t.Error("selected")
	}
	if (&config{only: regexp.MustCompile("wrk")}).selected("tls") {
		t.Error("-only wrk selects a TLS scenario")
	}
}

func TestLoadgenArgs(t *testing.T) {
	for _, c := range []struct {
		sc   scenario
		want string
	}{
		{scenarios[0], "-addr A -c 64 -s 64 -p 1 -d 800ms"},
		{scenario{conns: 32, size: 64, pipe: 1, tls: true, handshake: true}, "-addr A -c 32 -s 64 -p 1 -d 800ms -tls -handshake"},
		{scenario{conns: 4, size: 65536, pipe: 1, tls: true}, "-addr A -c 4 -s 65536 -p 1 -d 800ms -tls"},
	} {
		if got := strings.Join(loadgenArgs(c.sc, "A", 800*time.Millisecond), " "); got != c.want {
			t.Errorf("%+v: %q, want %q", c.sc, got, c.want)
		}
	}
}

// TestTLSServers: with a certificate the tls scenarios get RingMachine's
// echo on both engines and Go net, each given the certificate, and a note
// that gnet is left out; without one, no TLS server.
func TestTLSServers(t *testing.T) {
	c := &config{servers: regexp.MustCompile(""), binDir: "/b", tlsCert: "/t/cert.pem", tlsKey: "/t/key.pem"}
	srvs, notes := c.servers2()
	got := map[string]string{}
	for _, s := range srvs {
		if s.proto == "tls" {
			got[s.name] = strings.Join(append(s.argv("127.0.0.1:1"), s.env...), " ")
		}
	}
	want := map[string]string{
		"ringmachine-uring": "/b/rm-echo -addr 127.0.0.1:1 -loops 1 -tls-cert /t/cert.pem -tls-key /t/key.pem RINGMACHINE_BACKEND=uring",
		"ringmachine-epoll": "/b/rm-echo -addr 127.0.0.1:1 -loops 1 -tls-cert /t/cert.pem -tls-key /t/key.pem RINGMACHINE_BACKEND=epoll",
		"net":               "/b/peer -impl net -proto echo -addr 127.0.0.1:1 -tls-cert /t/cert.pem -tls-key /t/key.pem",
	}
	if len(got) != len(want) {
		t.Errorf("tls servers %v, want %v", got, want)
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: %q, want %q", name, got[name], w)
		}
	}
	if !slices.ContainsFunc(notes, func(n string) bool { return strings.Contains(n, "gnet has no TLS") }) {
		t.Errorf("no note on gnet: %q", notes)
	}
	c.tlsCert, c.tlsKey = "", ""
	srvs, _ = c.servers2()
	for _, s := range srvs {
		if s.proto == "tls" {
			t.Errorf("TLS server %s without a certificate", s.name)
		}
	}
}

// TestTLSReport: the TLS scenarios render like the others: req/s tables
// against the best peer (net, the only one), the idle one in KB per
// connection, and ratio rows.
func TestTLSReport(t *testing.T) {
	named := func(name string) scenario {
		i := slices.IndexFunc(scenarios, func(sc scenario) bool { return sc.name == name })
		if i < 0 {
			t.Fatalf("no scenario %q", name)
		}
		return scenarios[i]
	}
	hs, idle := named("tls handshakes 32 clients"), named("tls idle memory")
	res := []*result{
		{scenario: hs, server: "ringmachine-uring", ours: true, samples: []sample{smp(600, 0.6), smp(700, 0.6), smp(650, 0.6)}},
		{scenario: hs, server: "net", samples: []sample{smp(1000, 0.5), smp(1000, 0.5), smp(1000, 0.5)}},
		{scenario: idle, server: "ringmachine-uring", ours: true, samples: []sample{{rss0: 4096, rss1: 4096 + 2000*18, kbc: 18}}},
		{scenario: idle, server: "net", samples: []sample{{rss0: 6144, rss1: 6144 + 2000*50, kbc: 50}}},
	}
	out := formatReport(res)
	reportHas(t, out,
		"### tls handshakes 32 clients\n",
		"| **ringmachine-uring** | 650 | 100 | 900 | – | 923.08 | 15 % | 0.65× net | 50 % | 0 |\n",
		"### tls idle memory\n\n| server | RSS before (MiB) | RSS with conns (MiB) | KB per conn | vs best peer |\n",
		"| **ringmachine-uring** | 4.0 | 39.2 | 18.0 | 0.36× net |\n",
		"| tls handshakes 32 clients | ringmachine-uring | 0.65 |\n",
	)
	if st := standings(res); len(st) != 1 || st[0].peer != "net" || st[0].scenario != hs.name {
		t.Errorf("standings %+v", st)
	}
}
