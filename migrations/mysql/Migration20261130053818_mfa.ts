import { Migration } from '@mikro-orm/migrations';

export class Migration20261130053818_mfa extends Migration {

  override name = 'Migration20261130053818_mfa';

  override up(): void | Promise<void> {
    this.addSql(`create table \`mfa_recovery_codes\` (\`id\` int unsigned not null auto_increment primary key, \`user_id\` varchar(36) not null, \`code_hash\` varchar(64) not null, \`used_at\` datetime(3) null, \`created_at\` datetime(3) not null) default character set utf8mb4 engine = InnoDB;`);
    this.addSql(`alter table \`mfa_recovery_codes\` add index \`mfa_recovery_codes_user_id_index\` (\`user_id\`);`);

    this.addSql(`create table \`passkeys\` (\`id\` varchar(36) not null, \`user_id\` varchar(36) not null, \`credential_id\` varchar(512) not null, \`public_key\` text not null, \`counter\` int unsigned not null default 0, \`transports\` varchar(255) null, \`device_type\` varchar(32) null, \`backed_up\` tinyint(1) not null default false, \`name\` varchar(100) null, \`created_at\` datetime(3) not null, \`last_used_at\` datetime(3) null, primary key (\`id\`)) default character set utf8mb4 engine = InnoDB;`);
    this.addSql(`alter table \`passkeys\` add index \`passkeys_user_id_index\` (\`user_id\`);`);
    this.addSql(`alter table \`passkeys\` add unique \`passkeys_credential_id_unique\` (\`credential_id\`);`);

    this.addSql(`create table \`mfa_totp\` (\`user_id\` varchar(36) not null, \`secret_encrypted\` varchar(255) not null, \`confirmed_at\` datetime(3) null, \`last_used_step\` int unsigned null, \`created_at\` datetime(3) not null, primary key (\`user_id\`)) default character set utf8mb4 engine = InnoDB;`);

    this.addSql(`alter table \`mfa_recovery_codes\` add constraint \`mfa_recovery_codes_user_id_foreign\` foreign key (\`user_id\`) references \`users\` (\`id\`) on delete cascade;`);

    this.addSql(`alter table \`passkeys\` add constraint \`passkeys_user_id_foreign\` foreign key (\`user_id\`) references \`users\` (\`id\`) on delete cascade;`);

    this.addSql(`alter table \`mfa_totp\` add constraint \`mfa_totp_user_id_foreign\` foreign key (\`user_id\`) references \`users\` (\`id\`) on update cascade on delete cascade;`);
  }

  override down(): void | Promise<void> {
    this.addSql(`drop table if exists \`mfa_recovery_codes\`;`);
    this.addSql(`drop table if exists \`passkeys\`;`);
    this.addSql(`drop table if exists \`mfa_totp\`;`);
  }

}
