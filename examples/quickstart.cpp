// Quick start: build with the commands in README.md, then run
//   ./build/examples/quickstart
#include <iostream>

#include <rescnn/rescnn.hpp>

int main() {
  auto x = rescnn::Tensor<float>::normal({2, 1, 28, 28}, 0.0, 1.0);
  std::cout << "input batch: " << x.shape() << '\n';
  return 0;
}
