package schema_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kazashi/kazashi/firmware/verify"
	"github.com/kazashi/kazashi/gateway/schema"
)

// constValues returns the string constants declared in the Go package in
// dir (its non-test files) for which match(name, type) holds; type is ""
// for an untyped constant.
func constValues(t testing.TB, dir string, match func(name, typ string) bool) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no Go files in %s: %v", dir, err)
	}
	fset := token.NewFileSet()
	var out []string
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, s := range g.Specs {
				vs := s.(*ast.ValueSpec)
				typ := ""
				if id, ok := vs.Type.(*ast.Ident); ok {
					typ = id.Name
				}
				for i, n := range vs.Names {
					if i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING || !match(n.Name, typ) {
						continue
					}
					v, err := strconv.Unquote(lit.Value)
					if err != nil {
						t.Fatal(err)
					}
					out = append(out, v)
				}
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("no matching constants in %s", dir)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// tapReasons is every reason code an event can carry: the pipeline's own
// (firmware/tap Reason…) and the verifier's (verify.Reasons).
func tapReasons(t testing.TB) []string {
	rs := constValues(t, "../../firmware/tap", func(name, typ string) bool { return typ == "" && strings.HasPrefix(name, "Reason") })
	for _, r := range verify.Reasons() {
		rs = append(rs, string(r))
	}
	slices.Sort(rs)
	return slices.Compact(rs)
}

// enumAt returns the enum at a slash path inside the schema of id.
func enumAt(t *testing.T, id, path string) []string {
	t.Helper()
	node := any(schemaDoc(t, id))
	for _, p := range strings.Split(strings.Trim(path, "/"), "/") {
		m, ok := node.(map[string]any)
		if !ok {
			t.Fatalf("%s: no %s", id, path)
		}
		node = m[p]
	}
	e, ok := node.([]any)
	if !ok {
		t.Fatalf("%s: no enum at %s", id, path)
	}
	var out []string
	for _, v := range e {
		out = append(out, v.(string))
	}
	slices.Sort(out)
	return out
}

// TestEnumsMatchGoConstants: every enumeration in the schemas is exactly
// the set of Go constants it stands for, read from the Go source, so a
// constant added or renamed in Go fails here until the schema follows.
func TestEnumsMatchGoConstants(t *testing.T) {
	tapDir, mqttDir, uplinkDir := "../../firmware/tap", "../../gateway/mqtt", "../../gateway/uplink"
	typed := func(typ string) func(string, string) bool {
		return func(_, tp string) bool { return tp == typ }
	}
	untyped := func(prefix string) func(string, string) bool {
		return func(name, tp string) bool { return tp == "" && strings.HasPrefix(name, prefix) }
	}
	for _, c := range []struct {
		id, path string
		want     []string
	}{
		{schema.Tap, "properties/outcome/enum", constValues(t, tapDir, typed("Outcome"))},
		{schema.Tap, "properties/assurance/enum", constValues(t, tapDir, typed("Assurance"))},
		{schema.Tap, "properties/profile/enum", constValues(t, tapDir, untyped("Profile"))},
		{schema.Tap, "properties/reason/enum", tapReasons(t)},
		{schema.Tap, "properties/credential/enum", constValues(t, "../../firmware/holder", typed("Kind"))},
		{schema.Tap, "properties/card_kind/enum", constValues(t, "../../drivers/jpki", typed("Holder"))},
		{schema.Status, "properties/reason/enum", constValues(t, mqttDir, untyped("Reason"))},
		{schema.Health, "properties/alarms/items/properties/code/enum", constValues(t, uplinkDir, untyped("Alarm"))},
	} {
		if got := enumAt(t, c.id, c.path); !slices.Equal(got, c.want) {
			t.Errorf("%s %s = %v\nGo constants: %v", c.id, c.path, got, c.want)
		}
	}
	// time_source lives in the shared definitions.
	if got, want := enumAt(t, "kazashi.defs/v1", "$defs/time_source/enum"), constValues(t, tapDir, untyped("Time")); !slices.Equal(got, want) {
		t.Errorf("kazashi.defs/v1 $defs/time_source = %v\nGo constants: %v", got, want)
	}
}
