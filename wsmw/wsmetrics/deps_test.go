package wsmetrics_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCorePackagesStayFree: the core packages do not depend on
// Prometheus or OpenTelemetry, whatever this package and wsotel import.
// A user who does not import them pays nothing for them.
func TestCorePackagesStayFree(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("go", "list", "-deps", "../../wsroute", "../../wsmw", "../../hub")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list listed %d packages, too few to be the core's dependencies:\n%s", len(deps), out)
	}
	for _, p := range deps {
		for _, banned := range []string{"github.com/prometheus/", "go.opentelemetry.io/", "github.com/redis/", "github.com/nats-io/"} {
			if strings.HasPrefix(p, banned) {
				t.Errorf("a core package depends on %s", p)
			}
		}
	}
}
