package schema_test

import (
	"os"
	"path"
	"regexp"
	"strings"
	"testing"

	"github.com/kazashi/kazashi/gateway/schema"
)

const topicsDoc = "../../docs/topics.md"

var (
	exampleLine = regexp.MustCompile("^(Invalid — )?Topic: `([^`]+)` · Schema: `([^`]+)`$")
	schemaLink  = regexp.MustCompile(`\]\(\.\./gateway/schema/(json/[^)]+\.json)\)`)
)

// docExample is a payload example in docs/topics.md: a line
// "Topic: `<topic>` · Schema: `<id>`" (or "Invalid — Topic: …") and the
// ```json block after it; an invalid example may be followed by a
// ```text block with the exact error.
type docExample struct {
	line        int
	topic, id   string
	invalid     bool
	payload     string
	wantErr     string
	wantErrSeen bool
}

func docExamples(t *testing.T, text string) []docExample {
	t.Helper()
	lines := strings.Split(text, "\n")
	block := func(i int, lang string) (string, int, bool) {
		for i < len(lines) && strings.TrimSpace(lines[i]) == "" {
			i++
		}
		if i >= len(lines) || lines[i] != "```"+lang {
			return "", i, false
		}
		var b strings.Builder
		for i++; i < len(lines) && lines[i] != "```"; i++ {
			b.WriteString(lines[i] + "\n")
		}
		return b.String(), i + 1, true
	}
	var out []docExample
	for i := 0; i < len(lines); i++ {
		m := exampleLine.FindStringSubmatch(lines[i])
		if m == nil {
			if strings.Contains(lines[i], "Schema: `") {
				t.Errorf("%s:%d: malformed example line %q", topicsDoc, i+1, lines[i])
			}
			continue
		}
		ex := docExample{line: i + 1, invalid: m[1] != "", topic: m[2], id: m[3]}
		var ok bool
		ex.payload, i, ok = block(i+1, "json")
		if !ok {
			t.Errorf("%s:%d: no ```json block after the example line", topicsDoc, ex.line)
			continue
		}
		if ex.invalid {
			if e, j, ok := block(i, "text"); ok {
				ex.wantErr, ex.wantErrSeen, i = strings.TrimSpace(e), true, j
			}
		}
		i--
		out = append(out, ex)
	}
	return out
}

// TestDocExamples: every example payload in docs/topics.md conforms to
// the schema it names (through ValidateAs and ValidateTopic on its topic)
// and every "Invalid" one fails with the error shown; every schema has a
// valid example; every schema link points to an embedded schema file and
// every schema is linked.
func TestDocExamples(t *testing.T) {
	b, err := os.ReadFile(topicsDoc)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	examples := docExamples(t, text)
	valid := map[string]int{}
	for _, ex := range examples {
		if got, ok := schema.ForTopic(ex.topic); !ok || got != ex.id {
			t.Errorf("%s:%d: topic %s has schema %q, the example says %s", topicsDoc, ex.line, ex.topic, got, ex.id)
		}
		err := schema.ValidateAs(ex.id, []byte(ex.payload))
		if err2 := schema.ValidateTopic(ex.topic, []byte(ex.payload)); (err == nil) != (err2 == nil) {
			t.Errorf("%s:%d: ValidateAs %v, ValidateTopic %v", topicsDoc, ex.line, err, err2)
		}
		switch {
		case !ex.invalid && err != nil:
			t.Errorf("%s:%d: %v", topicsDoc, ex.line, err)
		case !ex.invalid:
			valid[ex.id]++
		case err == nil:
			t.Errorf("%s:%d: the invalid example validates", topicsDoc, ex.line)
		case ex.wantErrSeen && err.Error() != ex.wantErr:
			t.Errorf("%s:%d: error\n%s\nthe doc shows\n%s", topicsDoc, ex.line, err, ex.wantErr)
		}
	}
	linked := map[string]bool{}
	for _, m := range schemaLink.FindAllStringSubmatch(text, -1) {
		id := strings.TrimSuffix(strings.TrimPrefix(m[1], "json/"), ".json")
		if _, err := schema.Source(id); err != nil || path.Clean(m[1]) != schema.File(id) {
			t.Errorf("%s: link to %s: no such schema file (%v)", topicsDoc, m[1], err)
		}
		linked[id] = true
	}
	for _, id := range schema.IDs() {
		if valid[id] == 0 {
			t.Errorf("%s: no valid example of %s", topicsDoc, id)
		}
		if !linked[id] {
			t.Errorf("%s: %s is not linked", topicsDoc, id)
		}
	}
	if len(examples) < len(schema.IDs()) {
		t.Errorf("only %d examples found", len(examples))
	}
}
