package docs_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestGuideJSIsThePagesCode keeps the guide's copyable client honest:
// every paragraph of every ```js snippet in guide.md must appear,
// whitespace aside, in the chat page's script, which the browser tests
// run. (Usage sketches are marked ```javascript and are not checked.)
func TestGuideJSIsThePagesCode(t *testing.T) {
	t.Parallel()
	guide, err := os.ReadFile("guide.md")
	if err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile("../example/static/chat.js")
	if err != nil {
		t.Fatal(err)
	}
	code := squeeze(string(page))
	blocks := regexp.MustCompile("(?s)```js\n(.*?)```").FindAllStringSubmatch(string(guide), -1)
	if len(blocks) == 0 {
		t.Fatal("found no JavaScript snippet in guide.md; the pattern is broken")
	}
	for _, b := range blocks {
		for _, para := range strings.Split(b[1], "\n\n") {
			if strings.TrimSpace(para) != "" && !strings.Contains(code, squeeze(para)) {
				t.Errorf("this part of a guide.md JavaScript snippet is not in example/static/chat.js; copy it from there:\n%s", para)
			}
		}
	}
}
