//go:build linux

package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/kdiag/kdiag/builtins/node"
	"github.com/kdiag/kdiag/builtins/node/nodetest"
	"github.com/kdiag/kdiag/engine"
)

// wire is an Executor that sends every request and answer through JSON,
// as a node agent's transport would, to Local on the other side.
type wire struct{ far node.Local }

func (w wire) Do(ctx context.Context, op node.Op, req any) (any, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	got := op.NewRequest()
	if err := json.Unmarshal(b, got); err != nil {
		return nil, err
	}
	res, serr := w.far.Do(ctx, op, got)
	if serr != nil {
		var e *engine.Error
		if !errors.As(serr, &e) {
			return nil, serr
		}
		b, _ := json.Marshal(e)
		var back engine.Error
		if err := json.Unmarshal(b, &back); err != nil {
			return nil, err
		}
		return nil, &back
	}
	b, err = json.Marshal(res)
	if err != nil {
		return nil, err
	}
	out := op.NewResult()
	return out, json.Unmarshal(b, out)
}

// TestSpecsOverAWire serves the built-ins through a JSON round trip and
// gets the same answers: a remote node agent is a transport.
func TestSpecsOverAWire(t *testing.T) {
	tg := nodetest.Start(t, nodetest.Options{})
	specs := map[string]*engine.Spec{}
	for _, s := range node.SpecsFor(wire{}) {
		specs[s.Name] = s
	}
	do := func(name string, a engine.Args) (any, error) {
		return specs[name].Run(context.Background(), &engine.Call{Spec: specs[name], Args: a})
	}
	h, err := do("enter_ns", engine.Args{"pid": int64(tg.PID), "namespaces": []any{"net", "mnt", "pid"}})
	if err != nil {
		t.Fatal(err)
	}
	ns := asArg(t, h)
	v, err := do("http_probe", engine.Args{"url": readyz, "ns": ns, "method": "GET", "timeout": "1s"})
	if p, _ := v.(*node.HTTPProbeResult); err != nil || p.Status != 500 {
		t.Errorf("http_probe over the wire: %+v, %v", v, err)
	}
	v, err = do("run", engine.Args{"cmd": []any{"cat", "/opt/config/config.toml"}, "ns": ns, "timeout": "5s"})
	if r, _ := v.(*node.RunResult); err != nil || r.Stdout != "[default]\n" {
		t.Errorf("run over the wire: %+v, %v", v, err)
	}
	v, err = do("stat", engine.Args{"path": "/opt/config/current.toml", "ns": ns})
	if s, _ := v.(*node.StatResult); err != nil || s.Type != "symlink" || s.Path != "/opt/config/current.toml" {
		t.Errorf("stat over the wire: %+v, %v", v, err)
	}
	_, err = do("read_file", engine.Args{"path": "/nope", "ns": ns, "max_bytes": int64(10)})
	wantErr(t, err, engine.KindNotFound, "read_file: /nope: no such file")
}

// TestTableRows: every row of the table declares the built-in it names,
// once, and every node built-in is a row.
func TestTableRows(t *testing.T) {
	seen := map[string]bool{}
	for _, op := range node.Ops() {
		s := op.Spec(node.Local{})
		if s == nil || s.Name != op.Name() || s.Run == nil {
			t.Errorf("row %s declares %+v", op.Name(), s)
		}
		if seen[op.Name()] {
			t.Errorf("row %s is in the table twice", op.Name())
		}
		seen[op.Name()] = true
	}
	if specs := node.Specs(); len(specs) != len(seen) {
		t.Errorf("%d specs for %d rows", len(specs), len(seen))
	}
}
