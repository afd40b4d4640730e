package subscriptions

import (
	"slices"
	"testing"

	"notifyhub/payloads"
)

func scoped(f payloads.Filter, site, user string) payloads.Filter {
	f.Site, f.User = site, user
	return f
}

func TestScopes(t *testing.T) {
	x := NewIndex[int]()
	sets := make([]Set, 7)
	subs := [][]payloads.Filter{
		0: {whole(evLic)},                                     // tenant-wide: sees every site and user
		1: {scoped(whole(evLic), "s1", "")},                   // site s1
		2: {scoped(whole(evLic), "s2", "")},                   // site s2
		3: {scoped(whole(evLic), "s1", "u1")},                 // user u1 at site s1
		4: {scoped(whole(evLic), "", "u1")},                   // user u1 anywhere
		5: {whole(evLic), scoped(whole(evLic), "s1", "")},     // two scopes: still once
		6: {scoped(res(evRes, "tickets", created), "s1", "")}, // filters combine with scopes
	}
	for c, fs := range subs {
		for _, f := range fs {
			if _, err := x.Subscribe("t1", c, &sets[c], f, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name  string
		event string
		r     payloads.Routing
		want  []int
	}{
		{"no route", evLic, payloads.Routing{}, []int{0, 5}},
		{"site s1", evLic, payloads.Routing{Site: "s1"}, []int{0, 1, 5}},
		{"site s2", evLic, payloads.Routing{Site: "s2"}, []int{0, 2, 5}},
		{"user u1 at s1", evLic, payloads.Routing{Site: "s1", Users: []string{"u1"}}, []int{0, 1, 3, 4, 5}},
		{"user u1 at s2", evLic, payloads.Routing{Site: "s2", Users: []string{"u1"}}, []int{0, 2, 4, 5}},
		{"users u2,u1 without site", evLic, payloads.Routing{Users: []string{"u2", "u1"}}, []int{0, 4, 5}},
		{"resource at s1", evRes, payloads.Routing{Resource: "tickets", Action: created, Site: "s1"}, []int{6}},
		{"resource at s1, other action", evRes, payloads.Routing{Resource: "tickets", Action: updated, Site: "s1"}, nil},
	}
	for _, tt := range tests {
		if got := matchSorted(t, x, "t1", tt.event, tt.r); !slices.Equal(got, tt.want) {
			t.Errorf("%s: Match = %v, want %v", tt.name, got, tt.want)
		}
	}
	// Unsubscribe takes away exactly the scoped entry.
	if n := x.Unsubscribe("t1", 5, &sets[5], scoped(whole(evLic), "s1", "")); n != 1 {
		t.Fatalf("unsubscribe scoped: removed %d", n)
	}
	if got := matchSorted(t, x, "t1", evLic, payloads.Routing{Site: "s1"}); !slices.Equal(got, []int{0, 1, 5}) {
		t.Errorf("after unsubscribing the site scope: %v", got)
	}
	for c := range sets {
		x.RemoveAll("t1", c, &sets[c])
	}
	if x.Nodes() != 0 || x.Entries() != 0 {
		t.Fatalf("nodes %d entries %d left after RemoveAll", x.Nodes(), x.Entries())
	}
}
