package fleet

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRunBounds runs 8 pods on 3 nodes (and 2 unscheduled) with
// concurrency 3: never more than 3 at once, never two of one node at once,
// every pod once, outcomes in the targets' order.
func TestRunBounds(t *testing.T) {
	var targets []Target
	for i, n := range []string{"a", "a", "a", "b", "b", "c", "", ""} {
		targets = append(targets, Target{Namespace: "ns", Pod: "p" + string(rune('0'+i)), Node: n})
	}
	var mu sync.Mutex
	running, maxRunning := 0, 0
	perNode := map[string]int{}
	seen := map[string]int{}
	outs := Run(context.Background(), targets, 3, func(ctx context.Context, tg Target) Outcome {
		mu.Lock()
		running++
		maxRunning = max(maxRunning, running)
		seen[tg.Pod]++
		if tg.Node != "" {
			perNode[tg.Node]++
			if perNode[tg.Node] > 1 {
				t.Errorf("two runs on node %s at once", tg.Node)
			}
		}
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		running--
		if tg.Node != "" {
			perNode[tg.Node]--
		}
		mu.Unlock()
		return Outcome{Status: "ok", Verdict: "fine: " + tg.Pod}
	})
	if maxRunning > 3 || maxRunning < 2 {
		t.Errorf("at most %d runs at once, want 2..3", maxRunning)
	}
	for i, o := range outs {
		if o.Target != targets[i] || seen[o.Pod] != 1 || o.Verdict != "fine: "+o.Pod {
			t.Errorf("outcome %d: %+v (ran %d times)", i, o, seen[o.Pod])
		}
	}
}

// TestRunCancelled: pods not started when the context ends are
// not-started, with a reason.
func TestRunCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	targets := []Target{{"ns", "a", "n1"}, {"ns", "b", "n1"}, {"ns", "c", "n1"}}
	outs := Run(ctx, targets, 2, func(ctx context.Context, tg Target) Outcome {
		cancel()
		return Outcome{Status: "cancelled"}
	})
	if outs[0].Status != "cancelled" || outs[1].Status != "not-started" || outs[2].Status != "not-started" || !strings.Contains(outs[2].Error, "cancelled") {
		t.Fatalf("outcomes %+v", outs)
	}
}

// TestSummarize groups by status and verdict with each pod's own name
// taken out, the largest group first, and prints hostile verdicts
// escaped.
func TestSummarize(t *testing.T) {
	outs := []Outcome{
		{Target: Target{"shop", "web-0", "n1"}, Status: "ok", Verdict: "suspect: ConfigMap shop/cfg key extra breaks web-0"},
		{Target: Target{"shop", "web-1", "n2"}, Status: "ok", Verdict: "pod web-1 is Ready"},
		{Target: Target{"shop", "web-2", "n1"}, Status: "ok", Verdict: "suspect: ConfigMap shop/cfg key extra breaks web-2"},
		{Target: Target{"shop", "web-3", "n2"}, Status: "ok", Verdict: "suspect: ConfigMap shop/cfg key extra breaks web-3"},
		{Target: Target{"shop", "web-4", "n2"}, Status: "error", Verdict: "", Error: "get_pod: not found"},
	}
	g := Summarize(outs)
	if len(g) != 3 || len(g[0].Pods) != 3 || g[0].Verdict != "suspect: ConfigMap shop/cfg key extra breaks <pod>" ||
		g[1].Verdict != "pod <pod> is Ready" || g[2].Status != "error" {
		t.Fatalf("groups %+v", g)
	}
	s := &Summary{Runbook: "readiness-probe-failing", Selector: "app=web in shop", Pods: outs, Groups: g}
	text := s.Text()
	for _, want := range []string{
		"fleet: readiness-probe-failing on app=web in shop: 5 pods",
		"  3 of 5 pods: suspect: ConfigMap shop/cfg key extra breaks <pod>\n      shop/web-0 (node n1), shop/web-2 (node n1), shop/web-3 (node n2)",
		"  1 of 5 pods (run error): (no verdict)",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("summary lacks %q:\n%s", want, text)
		}
	}
	hostile := (&Summary{Runbook: "r", Pods: outs[:1], Groups: Summarize([]Outcome{{Target: Target{"ns", "p", ""}, Status: "ok", Verdict: "x\x1b[2Jy\nz"}})}).Text()
	if strings.Contains(hostile, "\x1b") || strings.Contains(hostile, "y\nz") {
		t.Errorf("hostile verdict printed raw: %q", hostile)
	}
}
