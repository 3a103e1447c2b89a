// Must not compile: a string passed where the remote function takes an int.
#include <lumen/lumen.h>

#include <string>

int Plus(int a, int b) { return a + b; }
LUMEN_REMOTE(Plus);

int main() {
  auto ref = lumen::Task(Plus).Remote(1, std::string("two"));
  return 0;
}
