// Must not compile: one argument for a two-parameter remote function.
#include <lumen/lumen.h>

int Plus(int a, int b) { return a + b; }
LUMEN_REMOTE(Plus);

int main() {
  auto ref = lumen::Task(Plus).Remote(1);
  return 0;
}
