// Exercise 3: two counter actors called in alternation.
#include <lumen/lumen.h>

#include <iostream>
#include <vector>

class Counter {
 public:
  static Counter* Create() { return new Counter(); }
  int Increment() { return ++value_; }

 private:
  int value_ = 0;
};
LUMEN_REMOTE(Counter::Create, &Counter::Increment);

int main(int argc, char** argv) {
  lumen::Init(argc, argv);
  auto first = lumen::Actor(Counter::Create).Remote();
  auto second = lumen::Actor(Counter::Create).Remote();
  std::vector<lumen::ObjectRef<int>> refs;
  for (int i = 0; i < 5; ++i) {
    refs.push_back(first.Task(&Counter::Increment).Remote());
    refs.push_back(second.Task(&Counter::Increment).Remote());
  }
  std::cout << "[";
  const auto values = lumen::Get(refs);
  for (size_t i = 0; i < values.size(); ++i) std::cout << (i ? ", " : "") << *values[i];
  std::cout << "]" << std::endl;
  lumen::Shutdown();
}
