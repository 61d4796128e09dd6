Sqair.NativeAllocator.Configure();
Sqair.Denormals.FlushToZero();
return Sqair.Cli.Cli.Run(args);
