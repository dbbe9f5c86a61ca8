package schema

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// TestEverySchemaCompiles: each payload schema compiles against the
// draft 2020-12 meta-schema with only the embedded files.
func TestEverySchemaCompiles(t *testing.T) {
	s, err := compiled()
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != len(IDs()) {
		t.Fatalf("compiled %d schemas, want %d", len(s), len(IDs()))
	}
}

// embedded lists the embedded schema files as ids ("kazashi.tap/v2").
func embedded(t *testing.T) []string {
	t.Helper()
	var ids []string
	err := fs.WalkDir(files, "json", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			ids = append(ids, strings.TrimSuffix(strings.TrimPrefix(p, "json/"), ".json"))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

var fileID = regexp.MustCompile(`^kazashi\.[a-z][a-z-]*/v[1-9][0-9]*$`)

// TestSchemaFiles walks the schema directory on disk: every file is
// embedded, is named <name>/v<N>.json, has $schema draft 2020-12 and $id
// BaseURL + its path, and is either a payload schema (in IDs, with the
// const "schema" it names) or the shared definitions, every one of which
// some payload schema uses. Every object with properties forbids others,
// so a new field cannot slip through.
func TestSchemaFiles(t *testing.T) {
	var onDisk []string
	err := filepath.WalkDir("json", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			onDisk = append(onDisk, strings.TrimSuffix(strings.TrimPrefix(filepath.ToSlash(p), "json/"), ".json"))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	emb := embedded(t)
	if !slices.Equal(onDisk, emb) {
		t.Fatalf("on disk %v, embedded %v", onDisk, emb)
	}
	var payloads []string
	all := ""
	for _, id := range emb {
		b, err := files.ReadFile(File(id))
		if err != nil {
			t.Fatal(err)
		}
		all += string(b)
		var doc map[string]any
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Errorf("%s: %v", id, err)
			continue
		}
		if !fileID.MatchString(id) {
			t.Errorf("%s: file name is not json/<name>/v<N>.json", id)
		}
		if doc["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
			t.Errorf("%s: $schema %v", id, doc["$schema"])
		}
		if doc["$id"] != BaseURL+id+".json" {
			t.Errorf("%s: $id %v, want %s", id, doc["$id"], BaseURL+id+".json")
		}
		if id == defs {
			continue
		}
		payloads = append(payloads, id)
		props, _ := doc["properties"].(map[string]any)
		if s, _ := props["schema"].(map[string]any); s["const"] != id {
			t.Errorf("%s: properties.schema.const is %v", id, s["const"])
		}
		closed(t, id, "", doc)
	}
	if !slices.Equal(payloads, IDs()) {
		t.Errorf("payload schema files %v, IDs() %v", payloads, IDs())
	}
	b, _ := files.ReadFile(File(defs))
	var d struct {
		Defs map[string]any `json:"$defs"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	for name := range d.Defs {
		if !strings.Contains(all, `kazashi.defs/v1.json#/$defs/`+name+`"`) {
			t.Errorf("%s: $defs/%s is used by no schema", defs, name)
		}
	}
}

// closed checks that every object schema with properties, at the root and
// under properties and items, has additionalProperties false. (Objects
// without properties, such as a command's args, are open on purpose; the
// conditions under if/then/else only add rules to listed properties.)
func closed(t *testing.T, id, at string, n map[string]any) {
	if props, ok := n["properties"].(map[string]any); ok {
		if n["additionalProperties"] != false {
			t.Errorf("%s: #%s has properties but not additionalProperties: false", id, at)
		}
		for k, v := range props {
			if m, ok := v.(map[string]any); ok {
				closed(t, id, at+"/properties/"+k, m)
			}
		}
	}
	if items, ok := n["items"].(map[string]any); ok {
		closed(t, id, at+"/items", items)
	}
}

// TestNothingIsFetched: a $ref to anything but an embedded file fails to
// compile instead of being fetched, whatever its scheme.
func TestNothingIsFetched(t *testing.T) {
	for _, ref := range []string{"https://kazashi.dev/schema/kazashi.tap/v9.json", "https://example.com/x.json",
		"file:///etc/hostname", "http://127.0.0.1:1/x.json"} {
		c, err := newCompiler()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.AddResource(BaseURL+"test/v1.json", map[string]any{"$ref": ref}); err != nil {
			t.Fatal(err)
		}
		_, err = c.Compile(BaseURL + "test/v1.json")
		var le *jsonschema.LoadURLError
		if !errors.As(err, &le) || !strings.Contains(err.Error(), "nothing is fetched") {
			t.Errorf("$ref %s: %v", ref, err)
		}
	}
}

// TestSource serves the embedded files and refuses unknown ids.
func TestSource(t *testing.T) {
	for _, id := range append(IDs(), defs) {
		b, err := Source(id)
		if err != nil {
			t.Fatal(err)
		}
		disk, err := os.ReadFile(File(id))
		if err != nil || string(disk) != string(b) {
			t.Errorf("%s: Source differs from %s: %v", id, File(id), err)
		}
	}
	if _, err := Source("../schema.go"); !errors.Is(err, ErrUnknown) {
		t.Errorf("Source(../schema.go): %v", err)
	}
}
