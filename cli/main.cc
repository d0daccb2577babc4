#include <cstdio>

int main() {
  std::puts("kck");
  return 0;
}
