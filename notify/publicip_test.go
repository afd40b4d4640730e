package notify_test

import (
	"net"
	"testing"

	"notifyhub/notify"
)

func TestPublicIP(t *testing.T) {
	tests := []struct {
		ip     string
		public bool
	}{
		// IPv4: public unicast.
		{"8.8.8.8", true},
		{"1.1.1.1", true},
		{"100.63.255.255", true},  // just below CGNAT
		{"100.128.0.0", true},     // just above CGNAT
		{"198.17.255.255", true},  // just below benchmarking
		{"198.20.0.0", true},      // just above benchmarking
		{"223.255.255.255", true}, // just below multicast
		{"192.0.1.1", true},
		// IPv4: special purpose.
		{"0.0.0.0", false},
		{"0.1.2.3", false},
		{"10.1.2.3", false},
		{"100.64.0.1", false}, // CGNAT
		{"100.127.255.254", false},
		{"127.0.0.1", false},
		{"127.255.255.254", false},
		{"169.254.169.254", false}, // cloud metadata
		{"172.16.0.1", false},
		{"172.31.255.255", false},
		{"192.0.0.8", false}, // IETF protocol assignments
		{"192.0.0.170", false},
		{"192.0.2.1", false},   // TEST-NET-1
		{"192.88.99.1", false}, // 6to4 relay anycast
		{"192.168.1.1", false},
		{"198.18.0.1", false}, // benchmarking
		{"198.19.255.255", false},
		{"198.51.100.1", false}, // TEST-NET-2
		{"203.0.113.1", false},  // TEST-NET-3
		{"224.0.0.1", false},    // multicast
		{"239.255.255.250", false},
		{"240.0.0.1", false}, // reserved
		{"255.255.255.255", false},
		// IPv4-mapped IPv6 decides by the IPv4 address.
		{"::ffff:8.8.8.8", true},
		{"::ffff:127.0.0.1", false},
		{"::ffff:10.0.0.1", false},
		{"::ffff:169.254.169.254", false},
		// NAT64 (64:ff9b::/96): the embedded IPv4 address decides.
		{"64:ff9b::808:808", true}, // 8.8.8.8
		{"64:ff9b::7f00:1", false}, // 127.0.0.1
		{"64:ff9b::a00:1", false},  // 10.0.0.1
		{"64:ff9b::a9fe:a9fe", false},
		{"64:ff9b:1::a00:1", false}, // local-use NAT64 (RFC 8215)
		// 6to4 (2002::/16): the embedded IPv4 address decides.
		{"2002:808:808::1", true},   // 8.8.8.8
		{"2002:7f00:1::1", false},   // 127.0.0.1
		{"2002:a00:1::1", false},    // 10.0.0.1
		{"2002:c0a8:101::1", false}, // 192.168.1.1
		{"2002:a9fe:a9fe::", false}, // 169.254.169.254
		// IPv6: public unicast.
		{"2606:4700:4700::1111", true},
		{"2a00:1450:4001:82b::200e", true},
		{"2001:4860:4860::8888", true},
		// IPv6: special purpose.
		{"::", false},
		{"::1", false},
		{"::127.0.0.1", false},       // IPv4-compatible (deprecated)
		{"::ffff:0:a00:1", false},    // IPv4-translated
		{"100::1", false},            // discard-only
		{"2001::1", false},           // Teredo
		{"2001:2::1", false},         // benchmarking
		{"2001:db8::1", false},       // documentation
		{"3fff::1", false},           // documentation
		{"fc00::1", false},           // unique local
		{"fd12:3456:789a::1", false}, // unique local
		{"fe80::1", false},           // link-local
		{"fec0::1", false},           // site-local (deprecated)
		{"ff02::1", false},           // multicast
		{"ff0e::1", false},
	}
	for _, tt := range tests {
		ip := net.ParseIP(tt.ip)
		if ip == nil {
			t.Fatalf("test case %q does not parse", tt.ip)
		}
		if got := notify.PublicIP(ip); got != tt.public {
			t.Errorf("PublicIP(%s) = %v, want %v", tt.ip, got, tt.public)
		}
		if v4 := ip.To4(); v4 != nil { // the 4-byte form answers the same
			if got := notify.PublicIP(v4); got != tt.public {
				t.Errorf("PublicIP(%s as 4 bytes) = %v, want %v", tt.ip, got, tt.public)
			}
		}
	}
	if notify.PublicIP(nil) || notify.PublicIP(net.IP{1, 2, 3}) {
		t.Error("an invalid net.IP is public")
	}
}
