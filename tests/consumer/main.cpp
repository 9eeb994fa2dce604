// Built against an *installed* rescnn by the consumer_project test.
#include <iostream>

#include <rescnn/rescnn.hpp>

int main() {
  auto x = rescnn::Tensor<float>::ones({2, 3, 4, 4});
  std::cout << "consumer: shape " << x.shape() << '\n';
  return x.numel() == 96 ? 0 : 1;
}
