// A user program: one executable, run against any cluster (or an embedded one).
#include <lumen/lumen.h>

#include <iostream>
#include <string>
#include <vector>

struct Point {
  double x = 0;
  double y = 0;
  template <class Archive>
  void serialize(Archive& archive) {
    archive(x, y);
  }
};

Point Midpoint(Point a, Point b) { return {(a.x + b.x) / 2, (a.y + b.y) / 2}; }

class Greeter {
 public:
  static Greeter* Create(std::string greeting) { return new Greeter(std::move(greeting)); }
  std::string Greet(std::string name) { return greeting_ + ", " + name + "!"; }

 private:
  explicit Greeter(std::string greeting) : greeting_(std::move(greeting)) {}
  std::string greeting_;
};

LUMEN_REMOTE(Midpoint, Greeter::Create, &Greeter::Greet);

int main(int argc, char** argv) {
  lumen::Init(argc, argv);
  Point mid = *lumen::Get(lumen::Task(Midpoint).Remote(Point{0, 0}, Point{2, 4}));
  std::cout << "midpoint " << mid.x << " " << mid.y << std::endl;
  auto greeter = lumen::Actor(Greeter::Create).Remote(std::string("Hello"));
  std::cout << *lumen::Get(greeter.Task(&Greeter::Greet).Remote(std::string("Lumen"))) << std::endl;
  lumen::Shutdown();
}
