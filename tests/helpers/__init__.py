"""What the tests share: building runs and configs, a tiny net, interrupts."""
