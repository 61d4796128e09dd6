Sqair.Native.NativeAllocator.Configure();
Sqair.Native.Denormals.FlushToZero();
return Sqair.Cli.Cli.Run(args);
