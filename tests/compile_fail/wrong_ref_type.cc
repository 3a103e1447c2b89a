// Must not compile: an ObjectRef<double> passed where the remote function takes an int.
#include <lumen/lumen.h>

int Plus(int a, int b) { return a + b; }
LUMEN_REMOTE(Plus);

int main() {
  lumen::ObjectRef<double> half;
  auto ref = lumen::Task(Plus).Remote(1, half);
  return 0;
}
